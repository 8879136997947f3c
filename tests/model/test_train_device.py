"""Training and fitting on a CUDA GPU (`--device`), and the device choice.

The GPU tests run the same few steps on the GPU and on the CPU from the
same weights and compare what a user keeps: the losses, the weights, the
fitted scorer and the threshold. TF32 is off for the comparison (else the
GPU's convolutions round to 10-bit mantissas and drift by ~1e-3 per step).
"""

import numpy as np
import pytest
import torch

from cfnc_edge.api import train
from cfnc_edge.bundle import GAUSSIAN
from cfnc_edge.data.training_set import load_images
from cfnc_edge.errors import CfncError
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.train import TrainConfig, Trainer, resolve_device

on_gpu = pytest.mark.skipif(not torch.cuda.is_available(),
                            reason="needs a CUDA GPU that PyTorch sees (training on the GPU)")


def test_auto_device_is_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_clear_line(tiny_data, tmp_path):
    with pytest.raises(CfncError, match="--device cuda: PyTorch sees no CUDA GPU"):
        train(tiny_data, tmp_path / "b", ModelConfig(image_size=64, feature_dim=16), TrainConfig(steps=1),
              device="cuda", progress=False)
    assert not (tmp_path / "b" / "manifest.json").exists()


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "CPU"])
def test_a_bad_device_is_refused_before_any_work(tiny_data, tmp_path, bad):
    with pytest.raises(CfncError, match="--device must be auto, cpu, cuda or cuda:N"):
        train(tiny_data, tmp_path / "b", device=bad, progress=False)


def _steps(device: str, images: torch.Tensor, steps: int = 6):
    torch.manual_seed(0)
    model = CoarseToFine(ModelConfig(image_size=64, feature_dim=16)).to(device)
    t = Trainer(model, TrainConfig(steps=steps, batch_size=4))
    history = t.fit(images, progress=False)
    return model.cpu(), history


@pytest.fixture
def no_tf32():
    """IEEE fp32 for cuDNN convolutions and matmuls, restored after. The
    per-backend `fp32_precision` API where it exists (PyTorch >= 2.9): PyTorch
    refuses to read the legacy allow_tf32 flags once the new ones were set,
    which the torch-cuda backend does (seen on the H200 run, 2026-11-28)."""
    flags = [f for f in (getattr(torch.backends.cudnn, "conv", None), getattr(torch.backends.cuda, "matmul", None))
             if hasattr(f, "fp32_precision")]
    if not flags:
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        yield
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return
    old = [f.fp32_precision for f in flags]
    for f in flags:
        f.fp32_precision = "ieee"
    yield
    for f, v in zip(flags, old):
        f.fp32_precision = v


@pytest.mark.gpu
@on_gpu
def test_training_on_the_gpu_follows_the_cpu_run(tiny_data, no_tf32):
    images = torch.from_numpy(load_images(sorted((tiny_data / "train" / "good").glob("*.png")), 64, progress=False))
    cpu_model, cpu_hist = _steps("cpu", images)
    gpu_model, gpu_hist = _steps("cuda", images)
    assert next(gpu_model.parameters()).device.type == "cpu"
    for c, g in zip(cpu_hist, gpu_hist):  # same batches, same partners: the same losses up to rounding
        for k in ("ica", "fine", "encoder_std"):
            assert g[k] == pytest.approx(c[k], rel=1e-3, abs=1e-4), (k, c, g)
    worst = max(float((a - b).abs().max() / (a.abs().max() + 1e-12))
                for a, b in zip(cpu_model.state_dict().values(), gpu_model.state_dict().values())
                if a.is_floating_point())
    assert worst < 1e-3


@pytest.mark.gpu
@on_gpu
def test_a_bundle_trained_on_the_gpu_matches_one_trained_on_the_cpu(tiny_data, tmp_path, no_tf32):
    bundles = {d: train(tiny_data, tmp_path / d, ModelConfig(image_size=64, feature_dim=16),
                        TrainConfig(steps=4, batch_size=4), device=d, progress=False) for d in ("cpu", "cuda")}
    g_cpu, g_gpu = (bundles[d].tensors(GAUSSIAN) for d in ("cpu", "cuda"))
    np.testing.assert_allclose(g_gpu["mean"], g_cpu["mean"], rtol=0, atol=2e-3 * np.abs(g_cpu["mean"]).max())
    assert bundles["cuda"].threshold == pytest.approx(bundles["cpu"].threshold, rel=2e-2)
    assert bundles["cuda"].manifest["timing"]["peak_gpu_mib"] > 0  # GPU memory, beside the host's peak RSS
    assert "peak_gpu_mib" not in bundles["cpu"].manifest["timing"]
