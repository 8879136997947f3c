"""Folds and bank parts over groups (the frame each training tile came from):
a held-out tile must not be scored by a Gaussian or bank fitted on the other
tiles of its own frame, which overlap it and would make its score, and so the
threshold, too low. Without groups the splits are what they always were."""

import numpy as np
import pytest

from cfnc_edge.scoring.gaussian_fit import assign_folds
from cfnc_edge.scoring.memory_bank import split_parts


@pytest.mark.parametrize("n, folds, seed", [(10, 5, 0), (50, 5, 3), (3, 5, 1), (7, 2, 9)])
def test_without_groups_the_folds_are_the_balanced_seeded_permutation_as_before(n, folds, seed):
    k = max(1, min(folds, n))
    assert np.array_equal(assign_folds(n, folds, seed), np.random.default_rng(seed).permutation(np.arange(n) % k))


@pytest.mark.parametrize("n, part, seed", [(10, 4, 0), (130, 64, 2), (3, 64, 0)])
def test_without_groups_the_parts_are_the_seeded_split_as_before(n, part, seed):
    k = max(2 if n >= 2 else 1, -(-n // part))
    want = [np.sort(p) for p in np.array_split(np.random.default_rng(seed).permutation(n), k)]
    got = split_parts(n, part, seed)
    assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


def test_tiles_of_one_frame_share_a_fold_and_a_part():
    frame_of = np.repeat(np.arange(12), 3)  # 12 frames, 3 tiles each
    fold_of = assign_folds(len(frame_of), 5, seed=0, groups=frame_of)
    assert all(len(set(fold_of[frame_of == f])) == 1 for f in range(12))
    assert sorted(np.bincount(np.unique(np.c_[frame_of, fold_of], axis=0)[:, 1])) == [2, 2, 2, 3, 3]  # balanced frames
    parts = split_parts(len(frame_of), 8, seed=0, groups=frame_of)
    part_of = np.empty(len(frame_of), int)
    for j, p in enumerate(parts):
        part_of[p] = j
    assert all(len(set(part_of[frame_of == f])) == 1 for f in range(12))
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(frame_of))) and len(parts) == 5  # ceil(36 / 8)


def test_two_frames_still_give_two_parts_and_two_folds():
    frame_of = np.repeat([0, 1], 4)
    assert len(set(assign_folds(8, 5, 0, frame_of))) == 2
    assert len(split_parts(8, 64, 0, frame_of)) == 2
