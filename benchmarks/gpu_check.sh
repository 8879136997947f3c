#!/usr/bin/env bash
# The GPU check as one offline command, for a GPU machine without network:
#
#   bash benchmarks/gpu_check.sh --wheels DIR OUT
#
# 1. fails fast, with one line, where there is no CUDA device;
# 2. installs the wheels in DIR (python -m benchmarks.gpu_wheels makes them)
#    with pip --no-index: nothing is fetched;
# 3. runs the GPU tests: TensorRT tests skip, saying so, where TensorRT is
#    absent; any other GPU test that skips fails the check;
# 4. runs benchmarks/gpu_bench.py (kernel vs bandwidth floor and einsum
#    baselines, frame-to-verdict latency and throughput per GPU backend).
# Everything lands in OUT. Any failure stops the check with a non-zero exit
# (pipefail: a failing command is not hidden by `tee`). Budget: 8 minutes.
set -euo pipefail

usage() { echo "usage: bash benchmarks/gpu_check.sh [--wheels DIR] OUT" >&2; exit 2; }
wheels=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || usage; wheels="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "error: unknown option $1" >&2; usage ;;
    *) [ -z "$out" ] || usage; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || usage
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

fail() { echo "error: $*" >&2; exit 1; }

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
  [ -d "$wheels" ] || fail "--wheels $wheels is not a folder"
  ls "$wheels"/*.whl >/dev/null 2>&1 || fail "$wheels holds no .whl files (python -m benchmarks.gpu_wheels --out $wheels)"
  "$py" -m pip install --no-index --find-links "$wheels" "$wheels"/*.whl 2>&1 | tee "$out/pip.txt" \
    || fail "pip could not install the wheels in $wheels (rc $?, see $out/pip.txt)"
fi
command -v nvidia-smi >/dev/null && nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
step "doctor"
"$py" -m cfnc_edge doctor 2>&1 | tee "$out/doctor.txt" || fail "doctor failed (rc $?)"

# 3. GPU tests; a skip is only acceptable for TensorRT
step "GPU tests"
timeout 270 "$py" -m pytest -m gpu tests/runtime -q -rs -p no:cacheprovider --junitxml "$out/gpu-tests.xml" 2>&1 \
  | tee "$out/gpu-tests.txt" || fail "GPU tests failed (rc $?; 124: over 270 s), see $out/gpu-tests.txt"
"$py" - "$out/gpu-tests.xml" <<'PY'
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

# 4. benchmarks
step "GPU benchmarks"
timeout 300 "$py" -m benchmarks.gpu_bench --out "$out" 2>&1 | tee "$out/gpu-bench.log" \
  || fail "GPU benchmarks failed (rc $?; 124: over 300 s), see $out/gpu-bench.log"
step "done: results in $out"
