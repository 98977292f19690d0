"""StyleGAN3 T/R generator: parity with the official networks, construction formulas, round trips."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganprior.loading.safe_pickle import load_official_pickle
from ganprior.models.stylegan3 import (
    IncompatibleNetworkError,
    StyleGAN3Prior,
    SynthesisNetwork,
    from_config,
    from_official,
    synthesis_schedule,
)
from ganprior.ops.filtered_lrelu import decimate, filtered_lrelu, filtered_lrelu_output_size
from ganprior.ops.upfirdn2d import upfirdn2d
from official_cases import load_case, max_diff

ATOL = 1e-4
#: Construction arguments of each fixture (manifest ``construction.G_kwargs``), for the formula checks.
SCHEDULE_KWARGS = {
    "sg3_t_64": dict(channel_base=1024, channel_max=64),
    "sg3_r_64": dict(channel_base=2048, channel_max=128, conv_kernel=1, use_radial_filters=True),
}


@pytest.fixture(scope="module", params=sorted(SCHEDULE_KWARGS))
def case(request, official_dir):
    return (request.param, *load_case(official_dir, request.param))


@pytest.fixture(scope="module")
def prior(case):
    return from_official(case[1])


# ----- parity with the official reference arrays ------------------------------------------------


def test_shapes_and_w_avg_match_official(prior, case):
    _, _, ref = case
    assert prior.num_ws == int(ref["num_ws"]) == 16
    assert prior.resolution == 64 and prior.c_dim == 0 and prior.z_dim == 128
    assert max_diff(prior.w_avg(), ref["w_avg"][None]) == 0.0


@pytest.mark.parametrize("psi", ["1", "0.7"])
def test_mapping_and_synthesis_match_official(prior, case, psi):
    _, _, ref = case
    with torch.no_grad():
        ws = prior.mapping(ref["z"], ref["c"], truncation_psi=float(psi))
        img = prior.synthesis(ref[f"w_psi{psi}"], noise_mode="const")
    assert max_diff(ws, ref[f"w_psi{psi}"]) <= ATOL
    assert max_diff(img, ref[f"img_const_psi{psi}"]) <= ATOL


def test_full_forward_matches_official(prior, case):
    _, _, ref = case
    with torch.no_grad():  # one sample: the batch only enters through the styles' 1e-8 epsilon
        img = prior(ref["z"][:1], None, truncation_psi=0.7)
    assert max_diff(img, ref["img_const_psi0.7"][:1]) <= ATOL


def test_truncation_cutoff_only_touches_first_ws(prior, case):
    _, _, ref = case
    with torch.no_grad():
        ws = prior.mapping(ref["z"], None, truncation_psi=0.5, truncation_cutoff=4)
    assert max_diff(ws[:, 4:], ref["w_psi1"][:, 4:]) <= ATOL
    expected = prior.w_avg() + 0.5 * (ref["w_psi1"][:, :4] - prior.w_avg()[:, None])
    assert max_diff(ws[:, :4], expected) <= ATOL


# ----- construction formulas vs. what the official code stored ----------------------------------


def test_schedule_formulas_reproduce_stored_layers(prior, case):
    name, _, _ = case
    stored = prior.config()["synthesis"]
    derived = synthesis_schedule(128, 64, **SCHEDULE_KWARGS[name])
    assert derived["input"] == stored["input"]
    assert [l["name"] for l in derived["layers"]] == [l["name"] for l in stored["layers"]]
    for mine, theirs in zip(derived["layers"], stored["layers"]):
        for key, value in theirs.items():
            expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-12)
            assert mine[key] == expected, (theirs["name"], key)


def test_designed_filters_equal_stored_buffers(prior, case):
    name, _, _ = case
    fresh = SynthesisNetwork(**prior.config()["synthesis"])
    radial = 0
    for mine, theirs in zip(fresh.layers(), prior.G.synthesis.layers()):
        for buffer in ("up_filter", "down_filter"):
            a, b = getattr(mine, buffer), getattr(theirs, buffer)
            assert (a is None) == (b is None)
            if a is not None:
                assert a.shape == b.shape
                assert max_diff(a, b) <= 1e-7
                radial += a.ndim == 2
    assert radial == (12 if name == "sg3_r_64" else 0)  # R: radial down filters on the non-critical layers


# ----- our own format, structure, errors ----------------------------------------------------------


def test_config_round_trip_is_bit_identical(prior, case):
    _, _, ref = case
    config = json.loads(json.dumps(prior.config()))
    rebuilt = from_config(config, prior.state_dict())
    assert config["family"] == "stylegan3"
    for key, value in prior.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    with torch.no_grad():
        assert torch.equal(rebuilt.synthesis(ref["w_psi1"][:1]), prior.synthesis(ref["w_psi1"][:1]))


def test_state_dict_keys_are_prefixed_with_G_and_D(prior):
    keys = list(prior.state_dict())
    assert all(k.startswith(("G.", "D.")) for k in keys) and any(k.startswith("D.") for k in keys)
    assert "G.synthesis.input.freqs" in keys and "G.mapping.w_avg" in keys


def test_attached_stylegan2_discriminator_matches_official(prior, case):
    _, _, ref = case
    assert prior.has_discriminator
    with torch.no_grad():
        logits = prior.discriminator(ref["img_const_psi1"])
        features = prior.discriminator_features(ref["img_const_psi1"])
    assert max_diff(logits, ref["d_logits_img_const_psi1"]) <= ATOL
    assert [f.shape[-1] for f in features[:-1]] == [32, 16, 8, 4]  # shallow -> deep


def test_blocks_are_input_then_layers_in_order(prior):
    blocks = prior.blocks()
    assert blocks[0] is prior.G.synthesis.input
    assert len(blocks) == prior.num_ws
    assert blocks[-1].spec.is_torgb and not any(b.spec.is_torgb for b in blocks[1:-1])
    assert set(prior.synthesis_parameters()) <= set(prior.G.synthesis.parameters())


def _tiny_prior(**layer_kwargs) -> StyleGAN3Prior:
    torch.manual_seed(0)
    synthesis = synthesis_schedule(16, 16, channel_base=128, channel_max=8, num_layers=6, **layer_kwargs)
    mapping = dict(z_dim=8, c_dim=3, w_dim=16, num_ws=len(synthesis["layers"]) + 1, num_layers=2)
    return StyleGAN3Prior(mapping, synthesis)


@pytest.mark.parametrize("config", ["T", "R"])
def test_fresh_conditional_model_runs_and_backpropagates(config):
    prior = _tiny_prior(**({} if config == "T" else dict(conv_kernel=1, use_radial_filters=True)))
    z = torch.randn(2, 8)
    c = prior.class_matrix([0, 2], 2)
    ws = prior.mapping(z, c).detach().requires_grad_(True)
    img = prior.synthesis(ws)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    img.square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    rebuilt = from_config(json.loads(json.dumps(prior.config())), prior.state_dict())
    assert not rebuilt.has_discriminator
    with torch.no_grad():
        assert torch.equal(rebuilt.synthesis(ws), prior.synthesis(ws))


def test_bad_inputs_give_clear_errors(prior, official_dir):
    with pytest.raises(IncompatibleNetworkError, match="ws must be"):
        prior.synthesis(torch.zeros(1, 15, 128))
    with pytest.raises(IncompatibleNetworkError, match="z must be"):
        prior.mapping(torch.zeros(1, 64))
    with pytest.raises(IncompatibleNetworkError, match="class-conditional"):
        _tiny_prior().mapping(torch.zeros(1, 8), None)
    with pytest.raises(IncompatibleNetworkError, match="family"):
        from_config({**prior.config(), "family": "stylegan2"}, prior.state_dict())
    with pytest.raises(IncompatibleNetworkError, match="StyleGAN-XL"):
        from_official(load_official_pickle(official_dir / "sgxl_16" / "network-snapshot.stripped.pkl"))


# ----- the filtered_lrelu op ----------------------------------------------------------------------


def test_filtered_lrelu_without_filters_is_bias_lrelu_gain_clamp():
    torch.manual_seed(0)
    x, b = torch.randn(2, 3, 5, 7) * 100, torch.randn(3)
    out = filtered_lrelu(x, b=b, clamp=50.0)
    expected = (torch.nn.functional.leaky_relu(x + b[:, None, None], 0.2) * math.sqrt(2)).clamp(-50, 50)
    assert torch.allclose(out, expected, atol=1e-5)
    torgb = filtered_lrelu(x, b=b, gain=1, slope=1, clamp=50.0)  # StyleGAN3's ToRGB: bias + clamp only
    assert torch.allclose(torgb, (x + b[:, None, None]).clamp(-50, 50), atol=1e-5)


def test_filtered_lrelu_resamples_to_the_predicted_size_and_keeps_dc():
    fu = torch.full([12], 1 / 12)
    fd = torch.full([6, 6], 1 / 36)
    x = torch.full([1, 2, 10, 8], 3.0)
    out = filtered_lrelu(x, fu, fd, up=4, down=2, padding=[-3, -4, -5, -6], gain=1, slope=1)
    assert tuple(out.shape[2:]) == filtered_lrelu_output_size((10, 8), fu, fd, 4, 2, [-3, -4, -5, -6])
    assert torch.allclose(out, torch.full_like(out, 3.0), atol=1e-5)  # normalized filters: constant stays constant
    with pytest.raises(ValueError, match="empty output"):
        filtered_lrelu(torch.zeros(1, 1, 2, 2), fu, fd, up=1, down=1)


@pytest.mark.parametrize("taps_shape", [(12,), (6, 6)])
def test_decimate_equals_filter_then_drop(taps_shape):
    torch.manual_seed(0)
    x, f = torch.randn(2, 3, 31, 26), torch.rand(taps_shape)
    assert torch.allclose(decimate(x, f, 2), upfirdn2d(x, f, down=2), atol=1e-6)
    assert torch.equal(decimate(x, None, 2), upfirdn2d(x, None, down=2))
