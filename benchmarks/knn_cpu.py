"""The memory bank's nearest-neighbour search on the CPU, per implementation.

    python -m benchmarks.knn_cpu [--rounds 3] [--calls 3] [--bundle B --images DIR]

One frame's bank step at batch 1: P query patches (784 at 224 px, 1600 at
320 px for Lite0's pooled grid, C = 152 channels) against a bank of M rows
(1k-16k: --max-bank is 16384). Methods, timed in interleaved rounds so a
shared machine's load falls on all alike, median of every call:

- baseline: the hand-written search before this benchmark (8192-row chunks,
  bank_sq - 2 x.b^T in fresh temporaries), kept here verbatim;
- NumPy: runtime/knn.py's fallback (2048-row chunks, -2 b^T precomputed,
  one reused block);
- OpenVINO: runtime/knn_openvino.py (what runs where OpenVINO is installed);
- FAISS IndexFlatL2 (exact), when faiss-cpu is installed;
all with the distance recomputed from the difference, as runtime/knn.py
does, and checked against a float64 exhaustive search (max relative
difference to the largest distance).

With --bundle (a knn bundle) and --images, approximate FAISS indexes (IVF,
HNSW) are measured on that bundle's real bank and the features of those
images: recall of the exact nearest row, and the error on the image score
(the largest distance), which is what a verdict reads.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from cfnc_edge.deploy.parity import brute_force_distances
from cfnc_edge.runtime import knn_openvino
from cfnc_edge.runtime.knn import nearest_rows

C = 152


def baseline_rows(x, bank, bank_sq, chunk=8192):
    """The search as runtime/knn.py had it before (2026-12-03)."""
    best = np.full(len(x), np.inf, np.float32)
    idx = np.zeros(len(x), np.int64)
    rows = np.arange(len(x))
    for s in range(0, len(bank), chunk):
        d = bank_sq[s:s + chunk][None, :] - 2.0 * (x @ bank[s:s + chunk].T)
        j = d.argmin(1)
        v = d[rows, j]
        better = v < best
        best[better], idx[better] = v[better], j[better] + s
    return idx


def faiss_or_none():
    try:
        import faiss

        return faiss
    except ImportError:
        return None


def recompute(x, bank, idx):
    diff = x - bank[idx]
    return np.sqrt((diff * diff).sum(1))


def methods(bank):
    bank_sq, bank_t2 = (bank * bank).sum(1), np.ascontiguousarray(-2.0 * bank.T)
    out = {"baseline (hand-written, before)": lambda x: baseline_rows(x, bank, bank_sq),
           "NumPy (runtime/knn.py fallback)": lambda x: nearest_rows(x, bank_t2, bank_sq)}
    if knn_openvino.available():
        out["OpenVINO (runtime/knn_openvino.py)"] = knn_openvino.OpenVinoSearch(bank_t2, bank_sq)
    faiss = faiss_or_none()
    if faiss is not None:
        flat = faiss.IndexFlatL2(bank.shape[1])
        flat.add(bank)
        out[f"FAISS {faiss.__version__} IndexFlatL2"] = lambda x: flat.search(x, 1)[1][:, 0]
    return out


def timing_table(rng, rounds, calls):
    rows = []
    for p in (784, 1600):
        for m in (1024, 4096, 16384):
            bank = rng.standard_normal((m, C)).astype(np.float32)
            # queries near bank rows (noise of every scale), as good and defective patches are
            x = (bank[rng.integers(m, size=p)] + rng.standard_normal((p, C)).astype(np.float32)
                 * rng.choice([0.0, 0.1, 1.0, 3.0], (p, 1))).astype(np.float32)
            ref = brute_force_distances(x.T.reshape(1, C, p, 1), bank, np.zeros(C, np.float32)).ravel()
            ms = methods(bank)
            times = {k: [] for k in ms}
            for f in ms.values():
                f(x)  # warm-up (OpenVINO compiles here)
            for _ in range(rounds):
                for k, f in ms.items():
                    for _ in range(calls):
                        t0 = time.perf_counter()
                        recompute(x, bank, f(x))
                        times[k].append(1000 * (time.perf_counter() - t0))
            base = float(np.median(times["baseline (hand-written, before)"]))
            for k, f in ms.items():
                err = float(np.abs(recompute(x, bank, f(x)) - ref).max() / ref.max())
                t = float(np.median(times[k]))
                rows.append(f"| {p} | {m} | {k} | {t:.1f} | {base / t:.2f}x | {err:.1e} |")
            print(rows[-1], flush=True)
    return rows


def approximate_table(bundle: str, images: Path):
    """IVF and HNSW on a real bank: recall, and the error on the image score."""
    import cv2

    from cfnc_edge.bundle import BANK
    from cfnc_edge.runtime.inspector import Inspector

    faiss = faiss_or_none()
    if faiss is None:
        return ["", "FAISS is not installed: approximate indexes not measured."]
    insp = Inspector(bundle, "torch")
    t = insp.bundle.tensors(BANK)
    bank, center = t["bank"], t["center"]
    paths = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".bmp"))
    paths = [paths[i] for i in np.random.default_rng(0).choice(len(paths), min(12, len(paths)), replace=False)]
    queries = []
    for p in paths:
        f = insp.features([cv2.imread(str(p))])[0][0]
        queries.append(f.reshape(f.shape[0], -1).T - center)
    exact = methods(bank)["NumPy (runtime/knn.py fallback)"]
    ref = [recompute(q, bank, exact(q)) for q in queries]
    d = bank.shape[1]
    indexes = {}
    for nlist in (32, 64):
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        ivf.train(bank)
        ivf.add(bank)
        for nprobe in (4, 8, 16):
            indexes[f"IVFFlat nlist {nlist}, nprobe {nprobe}"] = (ivf, "nprobe", nprobe)
    hnsw = faiss.IndexHNSWFlat(d, 32)
    hnsw.add(bank)
    for ef in (16, 64, 128):
        indexes[f"HNSWFlat M 32, efSearch {ef}"] = (hnsw, "efSearch", ef)
    lines = ["", f"Approximate indexes on the bank of `{bundle}` ({len(bank)} x {d}), queries: the patches of "
             f"{len(queries)} images of `{images}` ({queries[0].shape[0]} each), distance recomputed from the "
             "difference; ms per image, median.", "",
             "| index | ms per image | exact-row recall | max rel. error on a patch | max rel. error on the image score |",
             "|---|---|---|---|---|", ]
    for name, f in [("exact (NumPy)", exact)] + [(k, None) for k in indexes]:
        if f is None:
            index, attr, value = indexes[name]
            (index.hnsw if attr == "efSearch" else index).__setattr__(attr, value)
            f = lambda q, index=index: index.search(q, 1)[1][:, 0]  # noqa: E731
        f(queries[0])
        ts, got = [], []
        for q in queries:
            t0 = time.perf_counter()
            got.append(recompute(q, bank, f(q)))
            ts.append(1000 * (time.perf_counter() - t0))
        rel = np.concatenate([(g - r) / max(r.max(), 1e-9) for g, r in zip(got, ref)])
        score = max(abs(g.max() - r.max()) / r.max() for g, r in zip(got, ref))
        recall = float(np.mean(np.abs(rel) < 1e-6))
        lines.append(f"| {name} | {np.median(ts):.1f} | {recall:.4f} | {rel.max():.1e} | {score:.1e} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--bundle")
    ap.add_argument("--images", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "knn-cpu.md")
    a = ap.parse_args()
    rows = timing_table(np.random.default_rng(0), a.rounds, a.calls)
    load = os.getloadavg()[0]
    lines = ["# The memory bank's nearest-neighbour search on the CPU", "",
             f"Machine: {machine()}; load average {load:.1f} at the end of the timing"
             f"{' (shared: other processes running)' if load > 1.5 else ''}.", "",
             f"One frame's bank step at batch 1: P query patches x M bank rows x C = {C} channels, random "
             f"queries near bank rows; distance recomputed from the difference for every method. {a.rounds} "
             f"interleaved rounds x {a.calls} calls per method, median. Command: `python -m benchmarks.knn_cpu`.",
             "", "| P | M | method | ms per frame | speed-up vs baseline | max rel. diff vs float64 |",
             "|---|---|---|---|---|---|", *rows]
    if a.bundle:
        lines += approximate_table(a.bundle, a.images)
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
