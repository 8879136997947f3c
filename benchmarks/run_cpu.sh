#!/usr/bin/env bash
# The CPU results committed in benchmarks/results and calibration/, in order.
# Usage: bash benchmarks/run_cpu.sh [DATA] [WORK]   (about an hour on 2 cores, most of it training)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/magnetic-tile}"
work="${2:-/tmp/cfnc-accuracy}"
python -m benchmarks.accuracy_magnetic_tile --data "$data" --work "$work" --epochs 5
bundle="$work/full/bundle-111"
python3 calibration/report.py "$bundle" "$data" calibration/int8-magnetic-tile.md
python -m benchmarks.bench_magnetic_tile "$bundle" --data "$data"
python -m benchmarks.distance_cpu --bundle "$bundle"
python3 -m cfnc_edge demo --out /tmp/cfnc-demo
python3 calibration/report.py /tmp/cfnc-demo/bundle /tmp/cfnc-demo/data calibration/int8-demo.md
python3 -m cfnc_edge export --bundle /tmp/cfnc-demo/bundle
python -m benchmarks.soak_stream --bundle /tmp/cfnc-demo/bundle --frames 6000
python -m benchmarks.kernel_compile
