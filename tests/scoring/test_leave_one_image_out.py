"""The bank's cross-fit: each image against the deployed bank less its own rows,
which is the bank a rebuild without that image gives (parts of one image)."""

import numpy as np

from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.scoring.crossfit import part_of, part_rows
from cfnc_edge.scoring.memory_bank import fit_bank, split_parts


def test_leave_one_image_out_equals_a_rebuild_without_the_image(rng):
    n, per_image, c = 7, 20, 5
    feats = rng.normal(size=(n, per_image, c)).astype(np.float32)

    def patches(idx):
        return feats[idx].reshape(-1, c)
    tensors, info = fit_bank(patches, n, per_image, bank_size=0.3, seed=3, max_bank=None, part_images=1,
                             progress=False)
    parts = split_parts(n, info["part_images"], info["seed"])
    assert all(len(p) == 1 for p in parts)  # a part is one image: leave-one-image-out
    rows, owner = part_rows(tensors["part"], len(parts)), part_of(parts, n)
    nn = CpuNearestNeighbour(tensors["bank"], tensors["center"])
    query = feats.reshape(n, per_image, c, 1).transpose(0, 2, 1, 3)  # (n, C, per_image, 1) feature maps
    for i in range(n):
        got = nn(query[i:i + 1], skip=rows[owner[i]])[0, :, 0]
        # brute force: the rows every other image's own coreset kept, float64, no expansion tricks
        others = np.concatenate([tensors["bank"][tensors["part"] == j] for j in range(len(parts)) if j != owner[i]])
        rebuilt = others.astype(np.float64) + tensors["center"]
        want = np.sqrt(((feats[i][:, None, :].astype(np.float64) - rebuilt[None]) ** 2).sum(-1)).min(1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # and the skipped rows are really the image's own: without the skip, its patches find themselves
    own = nn(query[0:1])[0, :, 0]
    assert (own < 1e-3).sum() >= 1


def test_per_image_coresets_do_not_depend_on_the_other_images(rng):
    """Why a part is one image: the rows image i keeps are the same whichever images
    it is fitted with, so leaving i out of the deployed bank IS the bank fitted without i."""
    n, per_image, c = 5, 16, 4
    feats = rng.normal(size=(n, per_image, c)).astype(np.float32)
    full, info = fit_bank(lambda idx: feats[idx].reshape(-1, c), n, per_image, bank_size=4, seed=0, max_bank=None,
                          part_images=1, progress=False)
    parts = split_parts(n, 1, info["seed"])
    rows = part_rows(full["part"], len(parts))
    for j, idx in enumerate(parts):
        kept = full["bank"][rows[j][0]:rows[j][1]] + full["center"]
        assert np.isin(kept.round(5), feats[idx[0]].round(5)).all()
