"""The combined scorer (Gaussian + memory bank, each normalised by held-out good
scores, summed): the fusion against a float64 reference on random inputs, the
combined head's split, a tiny train/eval/infer through the CLI, and export
parity on every CPU backend (the GPU one: tests/runtime/test_gpu_combined.py)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cfnc_edge.deploy.parity import brute_force_distances
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.combined_head import split_combined
from cfnc_edge.runtime.combined import CpuCombined
from cfnc_edge.scoring.reference import random_problem, reference_distance
from cfnc_edge.scoring.packing import unpack

# Stated tolerance, relative to the largest |fused distance|: the fp32
# Mahalanobis and the fp32 bank search each agree with float64 to ~1e-6
# (tests/runtime/test_distance.py, tests/scoring/test_memory_bank.py), the
# resize and the affine normalisation add rounding of the same order.
TOL = 1e-5


def bilinear_float64(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Half-pixel bilinear resize with clamped borders (OpenCV's INTER_LINEAR rule), in float64."""
    def axis(n_out, n_in):
        x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, x - lo
    (r0, r1, fr), (c0, c1, fc) = axis(h, m.shape[0]), axis(w, m.shape[1])
    rows = m[r0] * (1 - fr)[:, None] + m[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


def test_fusion_matches_float64(rng):
    b, d, h, w, c, s = 3, 12, 14, 10, 20, (7, 5)
    packed, mean, proj = random_problem(rng, b, d, h * w)  # float64 packed factor (P, T), mean (P, d)
    proj = proj.reshape(b, d, h, w).astype(np.float32)
    bank = rng.standard_normal((300, c)).astype(np.float32) + 3.0
    center = bank.astype(np.float64).mean(0).astype(np.float32)
    bank -= center
    pooled = (rng.standard_normal((b, c, *s)) * 1.5 + 3.0).astype(np.float32)
    fusion = np.array([4.0, 2.5])
    feats = torch.cat([torch.from_numpy(proj), F.interpolate(torch.from_numpy(pooled), size=(h, w), mode="nearest")],
                      1).numpy()
    packed = packed.astype(np.float32)  # as stored in a bundle; the reference uses the same values in float64
    got = CpuCombined(mean.astype(np.float32), packed, bank, center, fusion, s)(feats)

    maha = reference_distance(unpack(packed.astype(np.float64), d), mean.astype(np.float32),
                              proj.reshape(b, d, h * w)).reshape(b, h, w)
    knn = brute_force_distances(pooled, bank, center)
    ref = np.stack([maha[i] / fusion[0] + bilinear_float64(knn[i], h, w) / fusion[1] for i in range(b)])
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOL


@pytest.mark.parametrize("size", [64, 68, 96])
def test_combined_head_is_both_heads_from_one_pass(size):
    """68 is not a multiple of 8: the pooled map is not half the projection's side."""
    model = CoarseToFine(ModelConfig(image_size=size, feature_dim=16, ica=False, fca=False, head="combined"),
                         pretrained=False).eval()
    x = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    with torch.inference_mode():
        feats, _ = model(x)
        taps = model.pyramid(model.normalise(x))
        proj, pooled = split_combined(feats, 16, model.tap_shapes[1])
        assert torch.equal(proj, model.project(taps)) and torch.equal(pooled, model.pool(taps))
    assert feats.shape[1] == model.cfg.feature_channels


@pytest.fixture(scope="module")
def combined_bundle(tiny_data, tmp_path_factory):
    """Trained and fitted through the CLI, as a user would."""
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("combined") / "b"
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "train", str(tiny_data), "--out", str(out), "--scorer",
                        "combined", "--image-size", str(TINY), "--dim", "16", "--steps", "2", "--batch-size", "4",
                        "--bank-size", "0.25"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    from cfnc_edge.bundle import Bundle

    return Bundle.open(out)


def test_combined_bundle_holds_both_scorers_and_a_fused_threshold(combined_bundle):
    from cfnc_edge.bundle import BANK, GAUSSIAN

    m = combined_bundle.manifest
    assert combined_bundle.scorer == "combined" and m["model"]["head"] == "combined"
    assert combined_bundle.has(GAUSSIAN) and combined_bundle.has(BANK)
    f = m["scorer"]["fusion"]
    assert f["gaussian_scale"] > 0 and f["bank_scale"] > 0
    np.testing.assert_allclose(combined_bundle.tensors(BANK)["fusion"], [f["gaussian_scale"], f["bank_scale"]])
    assert m["threshold"]["method"] == "cross-fit" and m["threshold"]["n"] == 12


def test_infer_and_eval_with_the_combined_scorer(combined_bundle, tiny_data, tmp_path):
    from cfnc_edge.images import list_images
    from cfnc_edge.runtime.inspector import Inspector

    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "eval", str(tiny_data), "--bundle",
                        str(combined_bundle.path), "--out", str(tmp_path / "report"), "--backend", "torch"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report" / "metrics.json").is_file()
    images = list_images(tiny_data / "test" / "good")[:2]
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "infer", *map(str, images), "--bundle",
                        str(combined_bundle.path), "--backend", "torch"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 2 and all(0 <= x["normalized_score"] <= 1 for x in lines)
    assert Inspector(combined_bundle, "torch").scoring.distance.__class__.__name__ == "CpuCombined"


def test_combined_export_and_cpu_backends_agree(combined_bundle, tmp_path, tiny_data):
    from cfnc_edge.api import InspectOptions, evaluate
    from cfnc_edge.runtime.backends.openvino_backend import openvino_available
    from tests.conftest import exported_copy

    b, report = exported_copy(combined_bundle, tmp_path / "b")
    assert report["fp32"]["max_rel"] <= 1e-3 and report["fp16"]["mean_rel"] <= 2e-2
    backends = ["torch", "onnxruntime"] + (["openvino"] if openvino_available() else [])
    res = {be: evaluate(b, tiny_data, inspection=InspectOptions(backend=be), progress=False) for be in backends}
    for be in backends[1:]:
        for k in ("image_auroc", "pixel_auroc"):
            assert res[be].metrics[k] == pytest.approx(res["torch"].metrics[k], abs=1e-3)


def test_fused_threshold_comes_from_held_out_scores(combined_bundle):
    """Scored by the Gaussian and bank that saw them, training images look better than any
    good image can look to models that did not: the threshold must come from the latter."""
    from cfnc_edge.data.bundle_images import image_paths
    from cfnc_edge.images import read_image
    from cfnc_edge.runtime.inspector import Inspector

    frames = [read_image(p) for p in image_paths(combined_bundle)]
    in_sample = [r.score for r in Inspector(combined_bundle, "torch")(frames)]
    assert combined_bundle.threshold > np.quantile(in_sample, 0.99)


def test_refit_switches_a_trained_gaussian_bundle_to_combined(tiny_bundle, tiny_data, tmp_path):
    from cfnc_edge.api import refit
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.runtime.inspector import Inspector

    dest = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, dest)
    refit(dest, tiny_data, scorer="combined", bank_size=0.25, progress=False)
    b = Bundle.open(dest)
    assert b.scorer == "combined" and b.model_config["head"] == "combined"
    assert Inspector(b, "torch").scoring.distance.__class__.__name__ == "CpuCombined"


def test_factor_precision_reads_the_gaussian_part_of_a_combined_head(combined_bundle):
    from cfnc_edge.deploy.factor_precision import distance_change

    c = distance_change(combined_bundle, "fp16", n=4)
    assert c["images"] == 4 and c["max_rel_distance"] < 1e-2


def test_calibrate_and_stream_run_a_combined_bundle(combined_bundle, tmp_path, tiny_data):
    """The commands the combined scorer reaches through the export and the Inspector:
    INT8 calibration of its model and a stream of frames with its verdicts."""
    import json

    from cfnc_edge.api import InspectOptions, calibrate, stream
    from cfnc_edge.bundle import Bundle
    from tests.conftest import exported_copy

    b, _ = exported_copy(combined_bundle, tmp_path / "b")
    calibrate(b, n=8, log=lambda m: None)
    assert "calibration" in Bundle.open(b.path).manifest
    out = tmp_path / "verdicts.jsonl"
    summary = stream(b.path, [str(tiny_data / "test" / "good")], inspection=InspectOptions(backend="onnxruntime", precision="int8"),
                     output=out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert summary["frames"] == len(lines) == len(list((tiny_data / "test" / "good").glob("*.png")))
    assert all(0 <= x["normalized_score"] <= 1 and isinstance(x["anomalous"], bool) for x in lines)
