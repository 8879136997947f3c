import numpy as np
import torch

from cfnc_edge.model.alignment import FeatureAlignment, ImageAlignment, warp
from cfnc_edge.model.losses import ica_loss, partner_permutation
from cfnc_edge.runtime.postprocess import unwarp


def rotation(angle: float) -> torch.Tensor:
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=torch.float32)


def test_ica_starts_as_identity_and_keeps_shape():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 40, 40)
    y, theta = ImageAlignment()(x)
    assert y.shape == x.shape and theta.shape == (3, 2, 3)
    torch.testing.assert_close(theta, torch.eye(2, 3).expand(3, 2, 3))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_fca_starts_as_identity_for_every_channel_count():
    torch.manual_seed(0)
    for c, s in ((24, 56), (40, 28), (112, 14)):
        x = torch.randn(2, c, s, s)
        torch.testing.assert_close(FeatureAlignment(c)(x), x, atol=1e-5, rtol=1e-5)


def test_fca_regresses_six_parameters_that_change_the_output():
    fca = FeatureAlignment(8)
    assert fca.loc.fc[2].out_features == 6
    with torch.no_grad():
        fca.loc.fc[2].bias.copy_(torch.tensor([0.0, 0, 0.3, 0, 0, 0]))  # shift along x
    x = torch.randn(1, 8, 16, 16)
    assert (fca(x) - x).abs().mean() > 0.1


def test_unwarp_inverts_the_ica_rotation():
    img = np.zeros((64, 64), np.float32)
    img[20:30, 12:40] = 1.0
    img[35:50, 30:36] = 2.0
    theta = rotation(0.4)
    aligned = warp(torch.from_numpy(img)[None, None], theta)[0, 0].numpy()
    back = unwarp(aligned, theta[0].numpy())
    centre = (slice(16, 48), slice(16, 48))
    assert np.abs(aligned - img)[centre].mean() > 0.1  # the rotation did something
    assert np.abs(back - img)[centre].mean() < 0.05


def test_ica_loss_falls_on_rotated_copies():
    """Rotated copies of one image can be aligned exactly: training must find it."""
    torch.manual_seed(0)
    base = torch.zeros(1, 3, 48, 48)
    base[:, :, 10:20, 8:40] = 1.0
    base[:, 1, 24:40, 30:38] = 1.0
    angles = torch.tensor([-0.5, -0.25, 0.0, 0.2, 0.45, 0.3, -0.4, 0.1])
    batch = torch.cat([warp(base, rotation(float(a))) for a in angles])
    ica = ImageAlignment()
    opt = torch.optim.Adam(ica.parameters(), lr=3e-3)
    losses = []
    for step in range(150):
        perm = partner_permutation(len(batch), torch.Generator().manual_seed(step))
        aligned, _ = ica(batch)
        loss = ica_loss(aligned, perm)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:3])


def test_partner_permutation_never_pairs_an_image_with_itself():
    for n in (2, 3, 8, 33):
        for seed in range(5):
            perm = partner_permutation(n, torch.Generator().manual_seed(seed))
            assert sorted(perm.tolist()) == list(range(n))
            assert (perm != torch.arange(n)).all()
