"""Spectral norm's fast gradient path (analytic sigma gradient, divided output, im2col convs) against the
official formulation: ``W / sigma`` with ``sigma = v W^T u^T`` differentiated by autograd, as DGP's
``layers.SN.W_`` computes it. In float64 the two agree to rounding; any slip in the rank-one sigma term,
the bias, the output scaling or a kernel choice shows up far above it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganprior.models import biggan
from ganprior.ops import spectral_norm
from ganprior.ops.spectral_norm import SNConv2d, SNEmbedding, SNLinear


def _official_normalized_weight(layer: torch.nn.Module) -> torch.Tensor:
    """DGP's eval-mode ``W_()``: one power iteration from the stored ``u``s (Gram-Schmidt), then W / sigma_0."""
    matrix = layer.weight.view(layer.weight.size(0), -1)
    us, vs, svs = [], [], []
    for i in range(layer.num_svs):
        with torch.no_grad():
            v = torch.matmul(getattr(layer, f"u{i}"), matrix)
            for y in vs:
                v = v - torch.mm(y, v.t()) * y / torch.mm(y, y.t())
            v = F.normalize(v, eps=layer.sn_eps)
            vs.append(v)
            u = torch.matmul(v, matrix.t())
            for y in us:
                u = u - torch.mm(y, u.t()) * y / torch.mm(y, y.t())
            u = F.normalize(u, eps=layer.sn_eps)
            us.append(u)
        svs.append(torch.squeeze(torch.matmul(torch.matmul(v, matrix.t()), u.t())))
    return layer.weight / svs[0]


def _official_forward(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    weight = _official_normalized_weight(layer)
    if isinstance(layer, SNConv2d):
        return F.conv2d(x, weight, layer.bias, layer.stride, layer.padding)
    if isinstance(layer, SNLinear):
        return F.linear(x, weight, layer.bias)
    return F.embedding(x, weight)


def _outputs_and_grads(layer: torch.nn.Module, x: torch.Tensor, forward) -> list[torch.Tensor]:
    out = forward(layer, x)
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    wrt = [p for p in (x, layer.weight, getattr(layer, "bias", None)) if p is not None and p.requires_grad]
    return [out.detach(), *torch.autograd.grad((out * weights).sum(), wrt)]


def _assert_close(ours: list[torch.Tensor], official: list[torch.Tensor]) -> None:
    for a, b in zip(ours, official, strict=True):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-12 * float(b.abs().max()), float((a - b).abs().max() / b.abs().max())


LAYERS = {  # (layer, input); the convs exercise both sides of the divide-the-output rule
    "conv3x3_few_pixels": (lambda svs: SNConv2d(32, 16, 3, padding=1, num_svs=svs), (1, 32, 3, 3)),
    "conv3x3_many_pixels": (lambda svs: SNConv2d(4, 6, 3, padding=1, num_svs=svs), (2, 4, 16, 16)),
    "conv1x1_no_bias": (lambda svs: SNConv2d(12, 5, 1, bias=False, num_svs=svs), (2, 12, 4, 4)),
    "linear": (lambda svs: SNLinear(20, 7, num_svs=svs), (3, 20)),
    "embedding": (lambda svs: SNEmbedding(9, 6, num_svs=svs), None),
}


@pytest.mark.parametrize("num_svs", [1, 2])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_fast_sigma_gradient_equals_the_official_formulation(kind, num_svs):
    torch.manual_seed(0)
    make, shape = LAYERS[kind]
    layer = make(num_svs).double().eval()
    if shape is None:
        x = torch.tensor([3, 0, 3, 8])
    else:
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert layer._fast_gradient()
    if isinstance(layer, SNConv2d) and kind == "conv3x3_few_pixels":
        assert layer.weight.numel() > x.shape[0] * 16 * 9  # the divided-output branch
    u_before = [getattr(layer, f"u{i}").clone() for i in range(num_svs)]
    ours = _outputs_and_grads(layer, x, lambda m, t: m(t))
    official = _outputs_and_grads(layer, x, _official_forward)
    _assert_close(ours, official)
    assert all(torch.equal(getattr(layer, f"u{i}"), u) for i, u in enumerate(u_before))  # eval: u stays put


def test_fast_gradient_through_a_weight_transform():
    """The upsample-conv kernel is a function of the normalised weight; its gradient passes through."""
    torch.manual_seed(0)
    conv = SNConv2d(6, 5, 3, padding=1).double().eval()
    x = torch.randn(1, 6, 32, 32, dtype=torch.float64, requires_grad=True)
    assert 32 * 32 >= biggan._MIN_PIXELS_FOR_TRANSPOSED_CONV_TUNED  # the transposed conv with the rebuilt kernel

    def official(m: SNConv2d, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.interpolate(t, scale_factor=2), _official_normalized_weight(m), m.bias, padding=1)

    ours = _outputs_and_grads(conv, x, lambda m, t: biggan._upsample_conv3x3(t, m))
    reference = _outputs_and_grads(conv, x, official)
    for a, b in zip(ours, reference, strict=True):
        assert float((a - b).abs().max()) <= 1e-12 * float(b.abs().max())


@pytest.mark.parametrize("trainable", [True, False])
def test_im2col_convolution_equals_the_default_kernel(monkeypatch, trainable):
    """Few pixels, many channels: the im2col kernel, forward and backward, in both gradient paths."""
    torch.manual_seed(0)
    conv = SNConv2d(48, 8, 3, padding=1).double().eval().requires_grad_(trainable)
    x = torch.randn(1, 48, 4, 4, dtype=torch.float64, requires_grad=True)
    monkeypatch.setattr(spectral_norm, "_IM2COL_MIN_WEIGHT_BYTES", 1000)
    assert spectral_norm._im2col_wins(x, conv.weight, conv)
    calls = []
    real_im2col = torch.ops.aten._slow_conv2d_forward

    class Spy:
        def __call__(self, *args):
            calls.append(args[0].shape)
            return real_im2col(*args)

    with monkeypatch.context() as patch:
        patch.setattr(torch.ops.aten, "_slow_conv2d_forward", Spy())
        ours = _outputs_and_grads(conv, x, lambda m, t: m(t))
    assert calls  # the im2col kernel did run
    _assert_close(ours, _outputs_and_grads(conv, x, _official_forward))


def test_im2col_only_where_it_was_measured_faster():
    """G's first block and D's last blocks at the released width, batch 1-2; not at batch 4, nor for
    weights small enough that oneDNN's copy of them stays cheap."""
    def wins(cin: int, cout: int, shape: tuple[int, ...]) -> bool:
        conv = torch.nn.Conv2d(cin, cout, 3, padding=1, device="meta")
        return spectral_norm._im2col_wins(torch.empty(shape, device="cpu"), conv.weight, conv)

    assert wins(1536, 1536, (1, 1536, 8, 8)) and wins(1536, 1536, (2, 1536, 4, 4)) and wins(768, 1536, (1, 768, 8, 8))
    assert not wins(1536, 1536, (4, 1536, 4, 4)) and not wins(1536, 768, (1, 1536, 16, 16))
    assert not wins(768, 768, (1, 768, 8, 8)) and not wins(256, 256, (1, 256, 8, 8))


def test_training_mode_keeps_the_plain_path_and_updates_u():
    torch.manual_seed(0)
    layer = SNConv2d(8, 4, 3, padding=1).double().train()
    assert not layer._fast_gradient()
    u = layer.u0.clone()
    layer(torch.randn(1, 8, 5, 5, dtype=torch.float64)).sum().backward()
    assert not torch.equal(layer.u0, u) and layer.weight.grad is not None
    layer.eval().requires_grad_(False)
    assert not layer._fast_gradient()  # no gradient wanted: the cached path


def test_tuning_step_of_a_generator_equals_the_plain_path():
    """A whole G forward + backward to every parameter (DGP's tuning step) in float64: fast == plain."""
    torch.manual_seed(0)
    prior = biggan.BigGANPrior(biggan.BigGANConfig(resolution=32, G_ch=4, D_ch=4, dim_z=20, shared_dim=8,
                                                   n_classes=10, G_attn="16", D_attn="16")).double()
    G = prior.G
    z = torch.randn(2, G.dim_z, dtype=torch.float64)

    def grads() -> dict[str, torch.Tensor]:
        G.zero_grad(set_to_none=True)
        G(z, G.shared(torch.tensor([1, 4]))).square().mean().backward()
        return {n: p.grad for n, p in G.named_parameters() if p.grad is not None}

    fast = grads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spectral_norm.SpectralNormMixin, "_fast_gradient", lambda self: False)
        plain = grads()
    assert fast.keys() == plain.keys() and len(fast) > 40
    for name in plain:
        assert float((fast[name] - plain[name]).abs().max()) <= 1e-12 * float(plain[name].abs().max()), name
