"""Coreset selection speed on this CPU: the batched greedy k-center against the
plain one (one matrix-vector product per selected point), same data, same run.

    python -m benchmarks.coreset_cpu [--n 200000] [--channels 152] [--fraction 0.1] [--plain-steps 500]

Data: n patches of `channels` channels drawn around 2000 random cluster
centres (patch features are clustered, not uniform). The plain algorithm is
run for --plain-steps steps and its per-step time extrapolated to the full
count (it is linear in steps); both select identical points (tests/scoring/test_coreset.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from cfnc_edge.resources import peak_rss_mib
from cfnc_edge.scoring.coreset import bank_count, greedy_coreset, random_projection

RESULTS = Path(__file__).resolve().parent / "results"


def plain_steps(x: np.ndarray, steps: int, seed: int) -> float:
    p = random_projection(x, 128, seed)
    sq = (p * p).sum(1)
    j = 0
    mind = np.full(len(p), np.inf, np.float32)
    t = time.perf_counter()
    for _ in range(steps):
        c = p[j]
        np.minimum(mind, sq - 2.0 * (p @ c) + c @ c, out=mind)
        j = int(np.argmax(mind))
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--channels", type=int, default=152)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--plain-steps", type=int, default=500)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, a.channels)).astype(np.float32) * 3
    x = centres[rng.integers(2000, size=a.n)] + rng.standard_normal((a.n, a.channels)).astype(np.float32)
    count = bank_count(a.n, a.fraction)
    per_step = plain_steps(x, a.plain_steps, 0)
    t = time.perf_counter()
    sel, radius = greedy_coreset(x, count, seed=0)
    batched = time.perf_counter() - t
    rss = peak_rss_mib()
    text = (f"# Coreset selection on the CPU\n\nMachine: {machine()}. **Shared** with six other jobs "
            f"(load average ~20 on 2 cores): times are upper bounds.\n"
            f"Command: `python -m benchmarks.coreset_cpu --n {a.n} --channels {a.channels} --fraction {a.fraction}`.\n\n"
            f"| method | patches | channels (projected to 128) | selected | seconds | peak RSS MiB |\n|---|---|---|---|---|---|\n"
            f"| plain greedy, one matrix-vector product per step (baseline; {a.plain_steps} steps timed, "
            f"extrapolated) | {a.n} | {a.channels} | {count} | {per_step * count:.0f} | |\n"
            f"| batched exact greedy (scoring/coreset.py) | {a.n} | {a.channels} | {count} | {batched:.0f} | {rss:.0f} |\n\n"
            f"Covering radius (projected): {radius:.3f}. Speed-up: {per_step * count / batched:.1f}x.\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "coreset-cpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
