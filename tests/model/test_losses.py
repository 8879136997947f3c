import torch

from cfnc_edge.model.losses import DenseSimSiam, negative_cosine


def test_negative_cosine_stops_the_gradient_of_the_target():
    p = torch.randn(2, 8, 5, 5, requires_grad=True)
    z = torch.randn(2, 8, 5, 5, requires_grad=True)
    negative_cosine(p, z).backward()
    assert z.grad is None
    assert p.grad.abs().sum() > 0


def test_negative_cosine_value_is_minus_the_mean_cosine():
    p = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    z = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    ref = -(p * z).sum(1) / (p.norm(dim=1) * z.norm(dim=1))
    torch.testing.assert_close(negative_cosine(p, z), ref.mean())


def test_dense_simsiam_gradient_flows_only_through_the_predictor_branch():
    """The gradient of the loss must equal the gradient of the same loss with
    both targets computed outside autograd."""
    torch.manual_seed(0)
    head = DenseSimSiam(6).eval()  # eval: BN uses running stats, so the two passes are identical
    x = torch.randn(4, 6, 7, 7)
    perm = torch.tensor([1, 2, 3, 0])

    head.zero_grad()
    head(x, perm).backward()
    grads = [p.grad.clone() for p in head.parameters()]

    head.zero_grad()
    with torch.no_grad():
        z_target = head.f(x)
    z = head.f(x)
    p = head.g(z)
    ref = 0.5 * negative_cosine(p, z_target[perm]) + 0.5 * negative_cosine(p[perm], z_target)
    ref.backward()
    for g, p_ in zip(grads, head.parameters()):
        torch.testing.assert_close(g, p_.grad, rtol=1e-5, atol=1e-7)


def test_dense_simsiam_has_the_paper_depths():
    head = DenseSimSiam(24)
    convs_f = [m for m in head.f if isinstance(m, torch.nn.Conv2d)]
    convs_g = [m for m in head.g if isinstance(m, torch.nn.Conv2d)]
    assert len(convs_f) == 3 and len(convs_g) == 2
    assert all(c.kernel_size == (1, 1) for c in convs_f + convs_g)
