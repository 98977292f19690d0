"""The IEEE-float32 guard: switches TF32 off inside, restores the caller's flags after, and every
generator/discriminator forward that must match official float32 results runs inside it."""

from __future__ import annotations

import contextlib

import pytest
import torch

from ganprior.models import biggan, stylegan2, stylegan3
from ganprior.ops.precision import ieee_float32


def _flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.fixture
def tf32_on():
    saved = _flags()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_guard_disables_tf32_inside_and_restores_after_even_on_error(tf32_on):
    with ieee_float32(True):
        assert _flags() == (False, False)
    assert _flags() == (True, True)
    with pytest.raises(RuntimeError, match="boom"), ieee_float32(True):
        raise RuntimeError("boom")
    assert _flags() == (True, True)


def test_guard_is_a_no_op_when_disabled(tf32_on):
    with ieee_float32(False):
        assert _flags() == (True, True)


class _Spy:
    """Stands in for ``ieee_float32`` in a model module and records how it was called."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    @contextlib.contextmanager
    def __call__(self, enabled: bool = True):
        self.calls.append(enabled)
        with ieee_float32(enabled):
            yield


def _spy(monkeypatch, module) -> _Spy:
    spy = _Spy()
    monkeypatch.setattr(module, "ieee_float32", spy)
    return spy


def test_stylegan2_synthesis_and_discriminator_run_inside_the_guard(monkeypatch):
    spy = _spy(monkeypatch, stylegan2)
    torch.manual_seed(0)
    prior = stylegan2.StyleGAN2Prior(
        dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, mapping_kwargs=dict(num_layers=1),
             synthesis_kwargs=dict(channel_base=128, channel_max=16)),
        dict(c_dim=0, img_resolution=16, channel_base=128, channel_max=16)).eval()
    with torch.no_grad():
        img = prior(torch.randn(1, 8))
        prior.discriminator(img)
    assert spy.calls == [False, False]  # CPU tensors: entered, but as a no-op


def test_biggan_generator_and_discriminator_run_inside_the_guard(monkeypatch):
    spy = _spy(monkeypatch, biggan)
    torch.manual_seed(0)
    prior = biggan.BigGANPrior(biggan.BigGANConfig(resolution=32, G_ch=4, D_ch=4, dim_z=20, shared_dim=8,
                                                   n_classes=10, G_attn="0", D_attn="0")).eval()
    with torch.no_grad():
        img = prior.synthesis(torch.randn(1, 1, 20), prior.class_matrix(3, 1))
        prior.discriminator_features(img)
    assert spy.calls == [False, False]


def test_stylegan3_synthesis_runs_inside_the_guard(monkeypatch):
    spy = _spy(monkeypatch, stylegan3)
    torch.manual_seed(0)
    synthesis = stylegan3.synthesis_schedule(16, 16, channel_base=128, channel_max=8, num_layers=4)
    mapping = dict(z_dim=8, c_dim=0, w_dim=16, num_ws=len(synthesis["layers"]) + 1, num_layers=1)
    prior = stylegan3.StyleGAN3Prior(mapping, synthesis).eval()
    with torch.no_grad():
        prior(torch.randn(1, 8))
    assert spy.calls == [False]
