"""The PyTorch-CUDA backend: what can be checked on a CPU runs everywhere
(auto's order, the DLPack hand-off, the stream wiring, FP32 without TF32,
the missing-GPU error); the backend itself runs in the tests marked `gpu`,
which skip without CUDA and say why."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.backends import (
    choose_backend,
    create_backend,
    torch_cuda_available,
)
from cfnc_edge.runtime.gpu.device import missing
from cfnc_edge.runtime.gpu.interop import hand_off, shared_stream
from tests.blocked_imports import blocking

ALL = ("fp32", "fp16", "int8")


@pytest.mark.parametrize("precision, tensorrt, torch_cuda, onnx, expected", [
    ("fp16", ("fp16",), ("fp32", "fp16"), ALL, "tensorrt"),      # an engine for this GPU wins
    ("fp32", ("fp16",), ("fp32", "fp16"), ALL, "torch-cuda"),    # no fp32 engine: PyTorch on CUDA
    ("int8", ("fp16",), ("fp32", "fp16"), ALL, "onnxruntime"),   # int8 without an engine: not torch-cuda
    ("fp32", (), (), ALL, "onnxruntime"),                        # no GPU: the exported model on the CPU
    ("fp32", (), (), (), "torch"),                               # not exported: PyTorch on the CPU
    ("fp16", (), ("fp32", "fp16"), (), "torch-cuda"),
])
def test_auto_prefers_tensorrt_then_torch_cuda_then_cpu(precision, tensorrt, torch_cuda, onnx, expected):
    assert choose_backend(precision, tensorrt, torch_cuda, onnx) == expected


def test_dlpack_hand_off_shares_memory_and_densifies_broadcasts():
    """The same hand_off the backend uses with CuPy, here with NumPy (both
    implement from_dlpack): no copy for a dense tensor, a dense array for a
    broadcast view such as the identity transforms of a model without ICA."""
    with torch.inference_mode():  # as in the backend
        feats = torch.randn(2, 16, 4, 4)
        arr = hand_off(feats, np)
        feats.add_(1.0)
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 16, 4, 4)
    np.testing.assert_array_equal(arr, feats.numpy())  # the write is seen: same memory
    eye = torch.eye(2, 3).expand(5, 2, 3)
    dense = hand_off(eye, np)
    assert dense.flags.c_contiguous and dense.shape == (5, 2, 3)
    np.testing.assert_array_equal(dense, np.broadcast_to(np.eye(2, 3), (5, 2, 3)))


def test_cupy_stream_is_torchs_stream_on_its_device():
    """CuPy must wrap PyTorch's own handle (not a new stream) and know the
    device it was made on. Checked with stand-ins for the two CUDA objects;
    the GPU test checks the same on real streams."""
    made = []
    fake_cupy = SimpleNamespace(cuda=SimpleNamespace(ExternalStream=lambda ptr, device_id: made.append((ptr, device_id))
                                                     or SimpleNamespace(ptr=ptr, device_id=device_id)))
    torch_stream = SimpleNamespace(cuda_stream=0x7F00DEAD, device=torch.device("cuda", 1))
    s = shared_stream(torch_stream, fake_cupy)
    assert made == [(0x7F00DEAD, 1)] and (s.ptr, s.device_id) == (0x7F00DEAD, 1)


def test_fp32_turns_tf32_off_for_cudnn_convolutions():
    from cfnc_edge.runtime.backends.torch_cuda_backend import ieee_fp32

    conv = getattr(torch.backends.cudnn, "conv", None)
    if not hasattr(conv, "fp32_precision"):  # PyTorch < 2.9: the legacy flag
        before = torch.backends.cudnn.allow_tf32
        try:
            ieee_fp32()
            assert torch.backends.cudnn.allow_tf32 is False
        finally:
            torch.backends.cudnn.allow_tf32 = before
        return
    before = conv.fp32_precision
    try:
        ieee_fp32()
        assert conv.fp32_precision == "ieee"
    finally:
        conv.fp32_precision = before


@pytest.mark.skipif(torch_cuda_available(), reason="checks the error on a machine without CUDA")
def test_torch_cuda_without_a_gpu_is_a_clear_error(tiny_bundle):
    reason = missing("torch-cuda")
    assert reason
    with pytest.raises(CfncError, match="the torch-cuda backend needs an NVIDIA GPU with cupy and torch, but .*"
                                        "cupy-cuda12x\\[ctk\\]"):
        create_backend(tiny_bundle, "torch-cuda")


def test_auto_without_cupy_never_imports_torch(exported):
    """The torch-cuda check asks CuPy first, so `auto` on the ONNX Runtime path stays torch-free."""
    code = blocking("cupy", "cupyx") + f"""
import sys
from cfnc_edge.bundle import Bundle
from cfnc_edge.runtime.backends import auto_backend
# OpenVINO where export measured it faster on this CPU, else ONNX Runtime: both torch-free
assert auto_backend(Bundle.open({str(exported[0].path)!r}), 'fp32') in ('onnxruntime', 'openvino')
assert 'torch' not in sys.modules, 'torch imported'
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ---------------------------------------------------------------- on a GPU

NO_CUDA = missing("torch-cuda")
on_gpu = pytest.mark.skipif(NO_CUDA is not None, reason=f"needs CUDA for PyTorch and CuPy: {NO_CUDA}")


@pytest.fixture(scope="module")
def frames(tiny_data):
    from cfnc_edge.images import read_image

    return [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:6]]


def _rel(got, ref):
    return float(np.abs(got - ref).mean() / np.abs(ref).mean())


@pytest.mark.gpu
@on_gpu
@pytest.mark.parametrize("graphs", [False, True])
def test_features_on_the_gpu_match_pytorch_on_the_cpu(tiny_bundle, frames, graphs):
    import cupy

    from cfnc_edge.bundle import GAUSSIAN
    from cfnc_edge.images import preprocess
    from cfnc_edge.runtime.backends.torch_backend import TorchBackend
    from cfnc_edge.runtime.backends.torch_cuda_backend import TorchCudaBackend

    batch = preprocess(frames, int(tiny_bundle.model_config["image_size"]))
    ref_f, ref_t = TorchBackend(tiny_bundle)(batch)
    backend = TorchCudaBackend(tiny_bundle, "fp32", cuda_graphs=graphs)
    scoring = backend.scoring(tiny_bundle.tensors(GAUSSIAN))
    # one queue: CuPy's stream is PyTorch's
    assert backend.device == "cuda" and backend.stream.ptr == backend.torch_stream.cuda_stream
    for b in (1, len(batch), 1):  # batch 1 again: a replayed graph gives the new frames' features
        feats, theta = backend(batch[:b])
        assert isinstance(feats, cupy.ndarray) and feats.dtype == np.float32
        assert _rel(scoring.to_host(feats), ref_f[:b]) < 1e-4, b  # FP32 (no TF32): close to the CPU
        np.testing.assert_allclose(scoring.to_host(theta), ref_t[:b], atol=1e-5)


@pytest.mark.gpu
@on_gpu
def test_features_are_handed_over_without_a_copy(tiny_bundle, frames):
    from cfnc_edge.images import preprocess
    from cfnc_edge.runtime.backends.torch_cuda_backend import TorchCudaBackend

    backend = TorchCudaBackend(tiny_bundle, "fp32", cuda_graphs=True)
    batch = preprocess(frames[:2], int(tiny_bundle.model_config["image_size"]))
    feats, _ = backend(batch)
    _, (torch_feats, _), _ = backend.graphs[2]
    assert feats.data.ptr == torch_feats.data_ptr()  # the graph's own output buffer, read in place


@pytest.mark.gpu
@on_gpu
# fp32: 3e-3, since the GPU distance stores the Cholesky factor in fp16 (2^-11 relative per entry)
@pytest.mark.parametrize("precision, tol", [("fp32", 3e-3), ("fp16", 3e-2)])
def test_full_torch_cuda_pipeline_matches_the_cpu_pipeline(tiny_bundle, frames, precision, tol):
    from cfnc_edge.runtime.inspector import Inspector

    gpu = Inspector(tiny_bundle, "torch-cuda", precision)
    assert gpu.backend.name == "torch-cuda" and gpu.backend.device == "cuda"
    cpu = Inspector(tiny_bundle, "torch")
    for g, c in zip(gpu(frames), cpu(frames)):
        np.testing.assert_allclose(g.map, c.map, rtol=tol, atol=tol * c.map.max())
        assert g.score == pytest.approx(c.score, rel=tol)


@pytest.mark.gpu
@on_gpu
def test_auto_picks_torch_cuda_where_no_engine_exists(tiny_bundle):
    from cfnc_edge.runtime.backends import auto_backend

    assert auto_backend(tiny_bundle, "fp32") == "torch-cuda"  # the tiny bundle has no TensorRT engine
    assert auto_backend(tiny_bundle, "int8") == "torch"  # not exported, no int8 on torch-cuda
