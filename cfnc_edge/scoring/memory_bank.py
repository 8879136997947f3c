"""The memory-bank scorer: a coreset of good patch features, scored by the
distance of each test patch to its nearest neighbour in the bank (PatchCore).

Fitting is done part by part: the good images are split (seeded) into parts
of at most `part_images` images, and each part's patches are reduced to their
own greedy k-center coreset right after extraction. So memory holds one
part's patches at a time whatever the number of images, coreset work grows
linearly with it, and the bank keeps, for each row, the part it came from:
leaving one part out gives exactly the bank that would have been built
without that part's images, which is what cross-fitting the threshold needs
(scoring/crossfit.py). A part is one image (or one frame's tiles) by
default: each good image is then scored against the deployed bank less its
own rows. With parts of 64 images, 50 images made 2 parts, each scored
against half the bank: their held-out scores were those of a smaller,
worse model than the deployed one, and the threshold let most defects pass
(issue 19: 40% of the defects on a set ranked perfectly).

The bank is stored centred (its mean subtracted, kept as `center`): the
distance is unchanged, and the expansion ||x||^2 - 2 x.b + ||b||^2 used by
every backend loses far less to cancellation, which matters most for the
fp16 bank on the GPU.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.scoring.coreset import PROJECTION_DIM, bank_count, greedy_coreset

PART_IMAGES = 1
FEATURE_IMAGES = 32  # images whose features are asked for at once
# Default cap on the bank: scoring time and memory grow with every row, but a
# smaller cap costs accuracy (whole magnetic-tile set, combined scorer: 8192 rows
# lost 0.6 image AUROC points against 16384; benchmarks/results/bank-cap.md).
MAX_BANK = 16384


def split_parts(n: int, part_images: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Image indices in seeded random parts of about part_images (at least 2 parts when
    there are 2 groups). With `groups` (e.g. the frame of each tile) a group stays in one
    part, so leaving a part out leaves out every tile of its frames."""
    _, member_of = np.unique(np.arange(n) if groups is None else groups, return_inverse=True)
    m = int(member_of.max()) + 1 if n else 0
    k = min(max(2 if m >= 2 else 1, -(-n // part_images)), max(m, 1))
    return [np.flatnonzero(np.isin(member_of, p)) for p in np.array_split(np.random.default_rng(seed).permutation(m), k)]


def patch_features(model: CoarseToFine, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """uint8 images (N, 3, h, w) -> patch features (N * h * w, C) float32, image by image."""
    out = []
    for i in range(0, len(images), batch_size):
        f, _ = model.run(images[i:i + batch_size])
        out.append(f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1]))
    return np.concatenate(out)


def fit_memory_bank(model: CoarseToFine, images: np.ndarray, bank_size: float = 0.1, seed: int = 0,
                    max_bank: int | None = MAX_BANK, part_images: int = PART_IMAGES, batch_size: int = 32,
                    progress: bool = True, groups: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """uint8 good images (N, 3, h, w) -> (bank tensors, fit info).

    bank_size: a fraction (< 1) of all patches, or a total count (>= 1), at
    most max_bank rows (None: no cap), shared between the parts in proportion
    to their patches. Tensors:
    `bank` (M, C) float32 centred, `center` (C,), `part` (M,) int32.
    """
    model.eval()
    return fit_bank(lambda idx: patch_features(model, images[idx], batch_size), len(images),
                    model.cfg.positions, bank_size, seed, max_bank, part_images, progress, groups)


def part_quotas(sizes: list[int], target: int) -> list[int]:
    """Bank rows per part, summing to exactly `target` (rounding each part's share
    on its own could exceed --max-bank): every non-empty part keeps one row (a
    part's images need a neighbour when the others are held out), the rest is
    shared in proportion to the parts' patches by largest remainders, at most a
    part's patches. With fewer rows asked than non-empty parts, each keeps one."""
    sizes_a = np.asarray(sizes, np.int64)
    quota = (sizes_a > 0).astype(np.int64)
    rest, room = max(0, target - int(quota.sum())), sizes_a - quota
    if rest and room.sum():
        share = np.minimum(rest * room / room.sum(), room)
        extra = np.floor(share).astype(np.int64)
        left = min(rest, int(room.sum())) - int(extra.sum())
        order = np.argsort(extra - share, kind="stable")  # largest remainders first
        order = order[extra[order] < room[order]][:left]
        extra[order] += 1
        quota += extra
    return quota.tolist()


def _part_groups(parts: list[np.ndarray]) -> list[tuple[int, int]]:
    """Consecutive runs [first, last) of parts holding at most FEATURE_IMAGES images (at least one part)."""
    groups, first, count = [], 0, 0
    for j, idx in enumerate(parts):
        if count and count + len(idx) > FEATURE_IMAGES:
            groups.append((first, j))
            first, count = j, 0
        count += len(idx)
    return groups + [(first, len(parts))] if parts else groups


def fit_bank(part_features: Callable[[np.ndarray], np.ndarray], n: int, per_image: int, bank_size: float = 0.1,
             seed: int = 0, max_bank: int | None = MAX_BANK, part_images: int = PART_IMAGES,
             progress: bool = True, groups: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """fit_memory_bank on any feature source: part_features(image indices) -> their
    patch features (len * per_image, C), asked for several parts of at most
    FEATURE_IMAGES images at once (a part of one image would otherwise cost a
    forward pass at batch 1), each part reduced to its own coreset."""
    t0 = time.perf_counter()
    parts = split_parts(n, part_images, seed, groups)
    total = n * per_image
    target = bank_count(total, bank_size)
    target = min(target, max_bank) if max_bank else target
    quotas = part_quotas([len(idx) * per_image for idx in parts], target)
    rows, owner, radii = [], [], []
    bar = tqdm(total=len(parts), desc="memory bank", disable=not progress, unit="part", leave=False)
    for first, last in _part_groups(parts):
        feats = part_features(np.concatenate(parts[first:last]))
        start = 0
        for j in range(first, last):
            x = feats[start:start + len(parts[j]) * per_image]
            start += len(x)
            sel, radius = greedy_coreset(x, quotas[j], seed + j)
            rows.append(x[sel])
            owner.append(np.full(len(sel), j, np.int32))
            radii.append(radius)
            bar.update()
    bar.close()
    bank = np.concatenate(rows)
    center = bank.astype(np.float64).mean(0).astype(np.float32)
    info = {"kind": "knn", "bank_size": int(len(bank)), "channels": int(bank.shape[1]), "patches": int(total),
            "requested": bank_size, "max_bank": max_bank, "parts": len(parts), "part_images": part_images, "seed": seed,
            "projection_dim": PROJECTION_DIM, "covering_radius_projected": float(max(radii)),
            "fit_seconds": round(time.perf_counter() - t0, 1)}
    return {"bank": bank - center, "center": center, "part": np.concatenate(owner)}, info


def torch_nearest_distances(features: torch.Tensor, bank_t: torch.Tensor, bank_sq: torch.Tensor,
                            center: torch.Tensor) -> torch.Tensor:
    """features (B, C, h, w) -> (B, h, w) distance to the nearest bank row, in PyTorch ops that
    export to ONNX (MatMul, ArgMin, Gather, ReduceSum, Sqrt).

    bank_t is the centred bank transposed (C, M), in the dtype the product
    runs in (fp16 for an fp16 graph). As on the CPU (runtime/knn.py), rows
    are ranked by ||b||^2 - 2 x.b and the distance to the row found is
    recomputed from the difference, which avoids the expansion's cancellation.
    """
    b, c, h, w = features.shape
    x = features.flatten(2).transpose(1, 2) - center  # (B, P, C)
    cross = torch.matmul(x.to(bank_t.dtype), bank_t).float()  # (B, P, M)
    idx = (bank_sq - 2.0 * cross).argmin(-1)  # (B, P)
    nearest = torch.index_select(bank_t, 1, idx.flatten()).float().T.reshape(b, h * w, c)
    return torch.sqrt(((x - nearest) ** 2).sum(-1)).reshape(b, h, w)

