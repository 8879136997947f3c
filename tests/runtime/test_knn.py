"""The CPU bank search, each implementation (NumPy, OpenVINO) against a float64
exhaustive search on random data, at the stated tolerance of
tests/scoring/test_memory_bank.py: fp32 ranking, distance recomputed from the
difference, within 1e-5 of the largest distance."""

import numpy as np
import pytest

from cfnc_edge.deploy.parity import brute_force_distances
from cfnc_edge.runtime import knn_openvino
from cfnc_edge.runtime.knn import BANK_CHUNK, CpuNearestNeighbour
from tests.scoring.test_memory_bank import TOL, random_problem, rel_err

SEARCHES = ["numpy"] + (["openvino"] if knn_openvino.available() else [])


@pytest.mark.parametrize("search", SEARCHES)
def test_search_matches_float64(rng, search):
    feats, bank, center = random_problem(rng, rows=2 * BANK_CHUNK + 123)  # chunks, the last one partial
    ref = brute_force_distances(feats, bank, center)
    nn = CpuNearestNeighbour(bank, center, search=search)
    assert nn.search == search
    assert rel_err(ref, nn(feats)) <= TOL["fp32"]


@pytest.mark.skipif(not knn_openvino.available(), reason="OpenVINO is not installed")
def test_openvino_search_in_query_blocks_matches_float64(rng, monkeypatch):
    """A batch larger than one block (the score-matrix bound): blocks of 40 rows, then the rest."""
    monkeypatch.setattr(knn_openvino, "QUERY_BLOCK_SCORES", 40 * 3000)
    feats, bank, center = random_problem(rng, batch=3, rows=3000)  # 3 * 63 = 189 rows: 4 blocks + 29
    nn = CpuNearestNeighbour(bank, center, search="openvino")
    assert nn.compiled.block == 40
    assert rel_err(brute_force_distances(feats, bank, center), nn(feats)) <= TOL["fp32"]
    assert set(nn.compiled.requests) == {40, 29}
    compiled = nn.compiled.requests[40].get_compiled_model()
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"


@pytest.mark.parametrize("search", SEARCHES)
def test_leaving_rows_out_equals_the_smaller_bank(rng, search):
    """skip=(lo, hi) (NumPy whatever the search) is the search of the bank without those rows."""
    feats, bank, center = random_problem(rng, rows=3000)
    lo, hi = 1000, 2500
    got = CpuNearestNeighbour(bank, center, search=search)(feats, skip=(lo, hi))
    ref = brute_force_distances(feats, np.concatenate([bank[:lo], bank[hi:]]), center)
    assert rel_err(ref, got) <= TOL["fp32"]


def test_auto_uses_openvino_where_installed_and_unknown_searches_are_refused(rng):
    _, bank, center = random_problem(rng, rows=10)
    assert CpuNearestNeighbour(bank, center).search == ("openvino" if knn_openvino.available() else "numpy")
    with pytest.raises(ValueError, match="search must be one of"):
        CpuNearestNeighbour(bank, center, search="faiss")
