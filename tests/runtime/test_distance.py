"""The CPU distance step (CpuMahalanobis) and the factor's storage
precisions, against float64 on random problems, and the per-bundle setting."""

import numpy as np
import pytest

from cfnc_edge.errors import BundleError, CfncError
from cfnc_edge.runtime import cpu_kernel
from cfnc_edge.runtime.distance import CpuMahalanobis, blocked
from cfnc_edge.scoring.factor import compress, gaussian_tensors
from cfnc_edge.scoring.reference import random_problem, reference_distance
from cfnc_edge.scoring.packing import unpack

# max |got / ref - 1| against float64 on the true factor (as in test_kernel.py)
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-3, "int8": 2e-2}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("dim", [37, 64, 100, 150])
@pytest.mark.parametrize("batch", [1, 3, 9])  # 9: one full group of 8 images and a remainder
@pytest.mark.parametrize("use_kernel", [True, False], ids=["kernel", "numpy"])
def test_cpu_distance_matches_float64(rng, precision, dim, batch, use_kernel):
    if use_kernel and cpu_kernel.load() is None:
        pytest.skip("no C++ compiler to build kernels/mahalanobis_cpu.cpp")
    positions = 29
    packed, mean, feats = random_problem(rng, batch, dim, positions)
    f = compress(packed, precision)
    m = CpuMahalanobis(mean, f.values, threads=3, scale=f.scale, use_kernel=use_kernel)
    assert m.implementation.startswith("C++ kernel" if use_kernel else "NumPy")
    got = m(feats.reshape(batch, dim, positions, 1).astype(np.float32)).reshape(batch, positions)
    ref = reference_distance(unpack(packed, dim), mean, feats)
    # fp32 arithmetic on the stored values...
    np.testing.assert_allclose(got, reference_distance(f.dense(dim), mean, feats), rtol=1e-5)
    # ...within the storage's rounding of the true factor
    np.testing.assert_allclose(got, ref, rtol=TOLERANCE[precision])


def test_storage_rounding_is_what_each_precision_promises(rng):
    packed, mean, feats = random_problem(rng, 4, 100, 17)
    ref = reference_distance(unpack(packed, 100), mean, feats)
    err = {p: np.abs(reference_distance(compress(packed, p).dense(100), mean, feats) / ref - 1).max()
           for p in ("fp16", "int8")}
    assert err["fp16"] < 5e-4 and err["int8"] < 1e-2 and err["fp16"] < err["int8"]
    f = compress(packed, "int8")
    assert f.values.dtype == np.int8 and f.scale.shape == (17, 100)
    assert np.abs(f.values).max() == 127  # every row uses the full range


def test_blocked_layout_holds_the_factor_column_by_column():
    dim, rows = 5, 4
    packed = np.arange(1, 16, dtype=np.float32)[None]  # 1..15 packed row-major
    w = unpack(packed, dim)[0]
    out = blocked(packed, dim, rows)[0]
    assert out.shape == (8 * 12 // 2,)  # dpad = 8: blocks of 4 rows x 4 and x 8 columns
    first = out[:16].reshape(4, 4)  # column k of rows 0..3
    np.testing.assert_array_equal(first, w[:4, :4].T)
    second = out[16:].reshape(8, 4)  # rows 4..7 (5..7 padding) x columns 0..7
    np.testing.assert_array_equal(second[:5, 0], w[4, :5])
    assert not second[:, 1:].any() and not second[5:].any()


def test_gaussian_tensors_and_unknown_precision(rng):
    packed, mean, _ = random_problem(rng, 1, 8, 3)
    g = gaussian_tensors({"mean": mean, "factor": packed.astype(np.float32)}, "int8")
    assert g["factor"].dtype == np.int8 and g["factor_scale"].shape == (3, 8)
    assert "factor_scale" not in gaussian_tensors({"mean": mean, "factor": packed}, "fp16")
    with pytest.raises(CfncError, match="choose from fp32, fp16, int8"):
        compress(packed, "bf16")


def test_wrong_feature_shape_is_refused(rng):
    packed, mean, _ = random_problem(rng, 1, 8, 6)
    with pytest.raises(BundleError, match="expects 8 channels at 6 positions"):
        CpuMahalanobis(mean, packed.astype(np.float32))(np.zeros((1, 8, 2, 2), np.float32))


def test_gpu_kernel_refuses_large_d_with_one_line():
    from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis

    with pytest.raises(CfncError, match=r"d <= 256 and this bundle has d = 300") as e:
        GpuMahalanobis(np.zeros((2, 300)), np.zeros((2, 300 * 301 // 2), np.float32))
    assert "\n" not in str(e.value)


def test_factor_precision_is_set_per_bundle_and_used_at_load(exported, tiny_data):
    import shutil

    from cfnc_edge.api import set_factor_precision
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.images import read_image
    from cfnc_edge.runtime.inspector import Inspector

    src = exported[0]
    dest = src.path.parent / "factor-fp16"
    shutil.copytree(src.path, dest)
    report = set_factor_precision(dest, "fp16", log=lambda m: None)
    # a trained factor is harder than a random one: rows mix large and small
    # weights whose products cancel (measured here: fp16 ~6e-3, int8 ~0.28)
    assert 0 < report["vs_fp32"]["max_rel_distance"] < 2e-2
    b = Bundle.open(dest)
    assert b.manifest["gaussian"]["factor_precision"] == "fp16"
    assert b.manifest["gaussian"]["factor_check"]["to"] == "fp16"
    insp = Inspector(b, "onnxruntime")
    assert insp.scoring.distance.precision == "fp16"
    frames = [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:3]]
    ref = Inspector(src, "onnxruntime")(frames)
    for r, g in zip(ref, insp(frames)):
        assert abs(g.score / r.score - 1) < 2e-2
    with pytest.raises(CfncError, match="unknown factor precision"):
        set_factor_precision(dest, "int4", log=lambda m: None)
