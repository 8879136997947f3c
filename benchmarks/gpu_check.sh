#!/usr/bin/env bash
# The one prepared GPU check: GPU tests + GPU benchmarks, results as files.
# Runs inside 8 minutes on one GPU. Usage: bash benchmarks/gpu_check.sh [RESULTS_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q -e ".[test,gpu]" 2>&1 | tail -2
python3 -m cfnc_edge doctor | tee "$out/doctor.txt"
timeout 300 python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$out/gpu-tests.txt"
tests_rc=${PIPESTATUS[0]}
timeout 240 python -m benchmarks.gpu_bench --out "$out" 2>&1 | tee "$out/gpu-bench.log"
bench_rc=${PIPESTATUS[0]}
echo "gpu tests rc=$tests_rc, gpu bench rc=$bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
