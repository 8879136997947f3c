"""The memory-bank scorer: nearest-neighbour distances of every backend against
a float64 exhaustive search on random data, the in-graph bank, cross-fitting,
and a knn bundle through train, export, eval and refit."""

import io
import shutil
import warnings

import numpy as np
import pytest
import torch

from cfnc_edge.deploy.parity import brute_force_distances
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.scoring.crossfit import crossfit_scores, leave_part_out
from cfnc_edge.scoring.memory_bank import fit_bank, part_quotas, split_parts, torch_nearest_distances

# Stated tolerances, relative to the largest distance: fp32 search with the
# distance recomputed from the difference agrees with float64 to ~1e-6;
# an fp16 bank agrees with float64 on that fp16 bank to the same, and with
# the fp32 bank to the fp16 rounding of the rows (~1e-3).
TOL = {"fp32": 1e-5, "fp16": 2e-3}


def random_problem(rng, batch=2, channels=152, h=7, w=9, rows=9000, offset=20.0):
    """Features near some bank rows (distances from ~0 up), a mean far from zero (as real features)."""
    bank = rng.standard_normal((rows, channels)).astype(np.float32) + offset
    center = bank.astype(np.float64).mean(0).astype(np.float32)
    pick = bank[rng.integers(rows, size=batch * h * w)]
    noise = rng.standard_normal(pick.shape).astype(np.float32) * rng.choice([0.0, 0.01, 1.0, 5.0], (len(pick), 1))
    feats = (pick + noise).astype(np.float32).reshape(batch, h, w, channels).transpose(0, 3, 1, 2).copy()
    return feats, bank - center, center


def rel_err(ref, got):
    return float(np.abs(ref.astype(np.float64) - got).max() / np.abs(ref).max())


def test_cpu_search_matches_float64(rng):
    feats, bank, center = random_problem(rng)  # 9000 rows: two bank chunks
    ref = brute_force_distances(feats, bank, center)
    assert ref.min() < 1e-3  # exact matches are in the problem
    assert rel_err(ref, CpuNearestNeighbour(bank, center)(feats)) <= TOL["fp32"]


def _torch_dist(feats, bank, center, dtype):
    b = torch.from_numpy(bank)
    return torch_nearest_distances(torch.from_numpy(feats), b.T.contiguous().to(dtype), (b.double() ** 2).sum(1).float(),
                                   torch.from_numpy(center)[None, None, :])


class _Scorer(torch.nn.Module):
    def __init__(self, bank, center, dtype):
        super().__init__()
        b = torch.from_numpy(bank)
        self.register_buffer("bank_t", b.T.contiguous().to(dtype))
        self.register_buffer("bank_sq", (b.double() ** 2).sum(1).float())
        self.register_buffer("center", torch.from_numpy(center)[None, None, :])

    def forward(self, feats):
        return torch_nearest_distances(feats, self.bank_t, self.bank_sq, self.center)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_and_onnx_graph_match_float64(rng, precision):
    import onnx
    import onnxruntime as ort

    feats, bank, center = random_problem(rng, rows=3000)
    dtype = torch.float32 if precision == "fp32" else torch.float16
    stored = bank if precision == "fp32" else bank.astype(np.float16).astype(np.float32)
    ref_stored = brute_force_distances(feats, stored, center)
    ref = brute_force_distances(feats, bank, center)
    module = _Scorer(bank, center, dtype)
    if precision == "fp32":  # PyTorch on the CPU has no fp16 matmul worth checking
        with torch.inference_mode():
            assert rel_err(ref, module(torch.from_numpy(feats)).numpy()) <= TOL["fp32"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(feats),), buf, input_names=["features"],
                          output_names=["distances"], dynamic_axes={"features": {0: "b"}}, opset_version=17,
                          dynamo=False)
    ops = {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
    assert {"MatMul", "ArgMin", "Gather"} <= ops
    got = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"]).run(None, {"features": feats})[0]
    assert rel_err(ref_stored, got) <= TOL["fp32"]
    assert rel_err(ref, got) <= TOL[precision]


def test_leave_part_out_and_fold_loop():
    bank = {"bank": np.arange(12, dtype=np.float32).reshape(6, 2), "center": np.zeros(2, np.float32),
            "part": np.array([0, 0, 1, 2, 2, 2], np.int32)}
    out = leave_part_out(bank, 2)
    np.testing.assert_array_equal(out["part"], [0, 0, 1])
    np.testing.assert_array_equal(out["bank"], bank["bank"][:3])
    with pytest.raises(ValueError):
        leave_part_out({**bank, "part": np.zeros(6, np.int32)}, 0)
    parts = split_parts(10, 4, seed=0)
    assert len(parts) == 3 and sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert len(split_parts(3, 64, seed=0)) == 2  # cross-fitting always has two folds
    scores = crossfit_scores(parts, lambda j, idx: np.full(len(idx), float(j)))
    for j, idx in enumerate(parts):
        assert (scores[idx] == j).all()


@pytest.fixture(scope="module")
def knn_bundle(tiny_data, tmp_path_factory):
    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("knn") / "b"
    return train(tiny_data, out, ModelConfig(image_size=TINY, head="pooled"), TrainConfig(epochs=1, batch_size=4),
                 scorer="knn", bank_size=0.25, progress=False)


def test_knn_bundle_records_scorer_and_crossfitted_threshold(knn_bundle):
    from cfnc_edge.bundle import BANK

    m = knn_bundle.manifest
    assert knn_bundle.scorer == "knn" and knn_bundle.has(BANK)
    assert m["scorer"]["bank_size"] == round(0.25 * m["scorer"]["patches"])
    assert m["threshold"]["method"] == "cross-fit" and m["threshold"]["n"] == m["data"]["fit_images"] == 12
    t = knn_bundle.tensors(BANK)
    assert t["bank"].shape == (m["scorer"]["bank_size"], 40 + 112)
    assert np.abs(t["bank"].mean(0)).max() < 1e-3  # stored centred


def test_crossfitted_threshold_exceeds_in_sample_scores(knn_bundle):
    """Scored by the bank that holds their own patches, training images score ~0
    wherever their patch was kept; cross-fitted scores cannot be that optimistic."""
    from cfnc_edge.data.bundle_images import image_paths
    from cfnc_edge.images import read_image
    from cfnc_edge.runtime.inspector import Inspector

    insp = Inspector(knn_bundle, "torch")
    in_sample = [r.score for r in insp([read_image(p) for p in image_paths(knn_bundle)])]
    assert knn_bundle.threshold > np.quantile(in_sample, 0.99)


def test_knn_export_and_backends_agree(knn_bundle, tmp_path, tiny_data):
    import onnx

    from cfnc_edge.api import InspectOptions, evaluate
    from cfnc_edge.runtime.artefacts import ONNX_FILES
    from tests.conftest import exported_copy

    b, report = exported_copy(knn_bundle, tmp_path / "b")
    assert report["fp32_distances"]["max_rel"] <= 1e-3 and report["fp16_distances"]["mean_rel"] <= 2e-2
    g = onnx.load(str(b.verify(ONNX_FILES["fp32"])))
    assert [o.name for o in g.graph.output] == ["features", "theta", "distances"]
    from cfnc_edge.runtime.backends import create_backend
    from cfnc_edge.runtime.backends.openvino_backend import openvino_available

    graphs = ("onnxruntime", "openvino") if openvino_available() else ("onnxruntime",)
    for be in graphs:  # the bank is searched once, in the graph, not again on the features
        assert create_backend(b, be).in_graph
    res = {be: evaluate(b, tiny_data, inspection=InspectOptions(backend=be), progress=False) for be in ("torch", *graphs)}
    for be in graphs:
        for k in ("image_auroc", "pixel_auroc"):
            assert res["torch"].metrics[k] == pytest.approx(res[be].metrics[k], abs=1e-3)


def test_in_graph_bank_must_be_the_bundles(knn_bundle, tmp_path, tiny_data):
    from cfnc_edge.api import export, refit
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.errors import BundleError
    from cfnc_edge.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    dest = tmp_path / "b"
    shutil.copytree(knn_bundle.path, dest)
    export(dest, log=lambda m: None)
    manifest = Bundle.open(dest).manifest
    refit(dest, tiny_data, scorer="knn", bank_size=0.5, progress=False)  # a new bank, same weights
    b = Bundle.open(dest)
    b.manifest["files"].update({k: v for k, v in manifest["files"].items() if k.endswith(".onnx")})
    with pytest.raises(BundleError, match="memory bank"):
        OnnxRuntimeBackend(b, "fp32")


def test_refit_switches_scorer_and_drops_stale_graphs(knn_bundle, tmp_path, tiny_data):
    from cfnc_edge.api import export, refit
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.runtime.inspector import Inspector

    dest = tmp_path / "b"
    shutil.copytree(knn_bundle.path, dest)
    export(dest, log=lambda m: None)
    b = refit(dest, tiny_data, scorer="gaussian", progress=False)
    b = Bundle.open(dest)
    assert b.scorer == "gaussian" and b.model_config["head"] == "projection"
    assert not any(k.endswith(".onnx") for k in b.manifest["files"])
    assert Inspector(b, "torch").scoring.distance.__class__.__name__ == "CpuMahalanobis"


def test_part_quotas_sum_to_the_target_in_proportion(rng):
    # fixed cases where rounding, or a floor of one row after it, overshot the target
    assert part_quotas([5000, 50], 2) == [1, 1]
    assert part_quotas([85, 1063, 866, 2779, 2741], 6) == [1, 1, 1, 2, 1]
    assert part_quotas([100] * 5, 3) == [1] * 5  # fewer rows than parts: one each, said so in the docstring
    assert part_quotas([0, 10, 10], 4) == [0, 2, 2]  # an empty part gets nothing
    for _ in range(2000):
        sizes = rng.integers(1, 5000, size=rng.integers(1, 12))
        sizes[rng.random(len(sizes)) < 0.2] = 1  # tiny parts
        target = int(rng.integers(len(sizes), sizes.sum() + 1))
        q = np.array(part_quotas(sizes.tolist(), target))
        assert q.sum() == target and (q >= 1).all() and (q <= sizes).all(), (sizes, target, q)
        # in proportion: a larger part never gets fewer rows, and each is near its share (the one-row
        # floor of the tiny parts is taken from the others)
        order = np.argsort(sizes, kind="stable")
        assert np.all(np.diff(q[order]) >= 0)
        assert np.all(np.abs(q - target * sizes / sizes.sum()) < 2 + (sizes == 1).sum())


def test_the_bank_never_exceeds_max_bank(rng):
    """Rounding each part's share on its own gave 16386 rows for a cap of 16384."""
    feats = rng.standard_normal((7 * 25, 4)).astype(np.float32)  # 7 images of 25 patches, 3 parts of 3/3/1
    tensors, info = fit_bank(lambda idx: np.concatenate([feats[i * 25:(i + 1) * 25] for i in idx]), 7, 25,
                             bank_size=0.5, max_bank=17, part_images=3, progress=False)
    assert info["bank_size"] == len(tensors["bank"]) == 17
