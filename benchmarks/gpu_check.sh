#!/usr/bin/env bash
# The GPU check as one offline command, for a GPU machine without network:
#
#   bash benchmarks/gpu_check.sh [--wheels DIR] [--accuracy DATA] OUT
#
# 1. fails fast, with one line, where there is no CUDA device;
# 2. installs the wheels in DIR (python -m benchmarks.gpu_wheels makes them)
#    with pip --no-index --no-deps into OUT-independent /tmp/cfnc-site:
#    nothing is fetched and the image's own packages are left alone;
# 3. runs the GPU tests (runtime: the captured frame path against the CPU
#    pipeline for every scorer, replays on new input, a 4-source folder
#    stream at batch 32; and training on the GPU): TensorRT tests
#    skip, saying so, where TensorRT is absent; any other GPU test that skips
#    fails the check;
# 4. with --accuracy DATA (a magnetic-tile folder of 50 training images):
#    the knn/Gaussian accuracy rows trained on the GPU, after the tests;
# 5. runs benchmarks/gpu_bench.py alone (kernel vs bandwidth floor and einsum
#    baselines; frame to verdict at batch 1 (p50/p99) and 8/32/64 per GPU
#    backend, captured frame path and old per-stage path, with a stage split;
#    AnomaVision's PaDiM on the same GPU, from its carried wheel, and the ratio).
# Everything lands in OUT. A device session is short and may not come again,
# so a failing step does not stop the later ones: each is recorded, and the
# check exits non-zero at the end naming them. Budget: under 9 minutes.
set -uo pipefail

usage() { echo "usage: bash benchmarks/gpu_check.sh [--wheels DIR] [--accuracy DATA] OUT" >&2; exit 2; }
wheels=""
accuracy=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || usage; wheels="$2"; shift 2 ;;
    --accuracy) [ $# -ge 2 ] || usage; accuracy="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "error: unknown option $1" >&2; usage ;;
    *) [ -z "$out" ] || usage; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || usage
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

failed=()
fail() { echo "error: $*" >&2; failed+=("$*"); }

# 1. a CUDA device, asked of the driver directly (no package needed yet)
"$py" - <<'PY' || exit 2
import sys
from cfnc_edge.deploy.cuda_stack import driver_cuda
from cfnc_edge.runtime.gpu.device import cuda_devices
driver = driver_cuda()
if driver is None:
    sys.exit("error: no CUDA device: no NVIDIA driver (libcuda.so.1) on this machine; run the GPU check on a GPU machine")
if cuda_devices() == 0:
    sys.exit(f"error: no CUDA device: the driver (CUDA {driver[0]}.{driver[1]}) is there but CuPy sees no device; "
             "`python -m cfnc_edge doctor` says why")
PY
mkdir -p "$out"
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start )) s)"; }

# 2. wheels, offline
if [ -n "$wheels" ]; then
  step "installing wheels from $wheels"
  [ -d "$wheels" ] || { echo "error: --wheels $wheels is not a folder" >&2; exit 1; }
  ls "$wheels"/*.whl >/dev/null 2>&1 || { echo "error: $wheels holds no .whl files (python -m benchmarks.gpu_wheels --out $wheels)" >&2; exit 1; }
  "$py" -m pip install --no-index --no-deps --no-compile --upgrade --target /tmp/cfnc-site "$wheels"/*.whl \
    > "$out/pip.txt" 2>&1 || { echo "error: pip could not install the wheels in $wheels (see $out/pip.txt)" >&2; exit 1; }
  export PYTHONPATH="/tmp/cfnc-site${PYTHONPATH:+:$PYTHONPATH}"
fi
command -v nvidia-smi >/dev/null && nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
step "doctor"
timeout 120 "$py" -m cfnc_edge doctor > "$out/doctor.txt" 2>&1 || fail "doctor failed (rc $?), see $out/doctor.txt"

# 3. GPU tests; a skip is only acceptable for TensorRT
step "GPU tests"
# one stuck test must not eat the whole budget: a per-test limit where pytest-timeout is installed
per_test=$("$py" -c "import pytest_timeout" 2>/dev/null && echo "--timeout 60" || true)
timeout 280 "$py" -m pytest -m gpu tests/runtime tests/model/test_train_device.py -v -rs -p no:cacheprovider $per_test \
  --junitxml "$out/gpu-tests.xml" > "$out/gpu-tests.txt" 2>&1 \
  || fail "GPU tests failed (rc $?; 124: over 280 s), see $out/gpu-tests.txt"
tail -n 30 "$out/gpu-tests.txt"
"$py" - "$out/gpu-tests.xml" <<'PY' || fail "GPU tests skipped that must run on a GPU"
import sys
import xml.etree.ElementTree as ET
cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
skipped = [(c.get("name"), s.get("message", "")) for c in cases for s in c.findall("skipped")]
bad = [(n, m) for n, m in skipped if "TensorRT" not in m]
print(f"{len(cases)} GPU tests, {len(skipped)} skipped ({len(skipped) - len(bad)} for want of TensorRT)")
if not cases or bad:
    sys.exit("error: GPU tests that must run on a GPU were skipped: "
             + "; ".join(f"{n}: {m}" for n, m in bad) if bad else "error: no GPU tests ran")
PY

# 4. accuracy rows, after the tests: beside them, three CPU-heavy processes on
#    16 cores pushed the GPU tests past their limit (first H200 run)
if [ -n "$accuracy" ]; then
  step "accuracy rows on $accuracy"
  timeout 300 "$py" -m benchmarks.knn_magnetic_tile --data "$accuracy" --work /tmp/cfnc-knn \
    --sets subset50 disturbed50 --steps 300 --jobs 3 --eval-backend torch-cuda --name knn-magnetic-tile-gpu \
    > "$out/accuracy.log" 2>&1 || fail "accuracy rows failed (rc $?; 124: over 300 s), see $out/accuracy.log"
  cp benchmarks/results/knn-magnetic-tile-gpu.md benchmarks/results/knn-magnetic-tile-gpu.json "$out"/ 2>/dev/null || true
  grep -E "^(subset50|disturbed50) " "$out/accuracy.log" || true
fi

# 5. benchmarks, alone on the GPU
step "GPU benchmarks"
timeout 200 "$py" -m benchmarks.gpu_bench --out "$out" > "$out/gpu-bench.log" 2>&1 \
  || fail "GPU benchmarks failed (rc $?; 124: over 200 s), see $out/gpu-bench.log"
tail -n 40 "$out/gpu-bench.log"
step "done: results in $out"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
