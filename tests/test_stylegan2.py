"""StyleGAN2 generator/discriminator: parity with the official networks, round trips, training paths."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from ganprior.loading.safe_pickle import load_official_pickle
from ganprior.models.stylegan2 import (Discriminator, StyleGAN2Prior, discriminator_from_official, from_config,
                                       from_official)
from official_cases import load_case, max_diff

CASES = ["sg2_uncond_32", "sg2_cond_64_fp16"]
ATOL = 1e-4
#: The x200 probe reaches |1700|, where one float32 ulp is 1.2e-4: compare it relative to its scale.
PROBE_RTOL = 4e-6
#: Attributes the stylegan3 repo stores but stylegan2-ada-pytorch's networks.py does not.
SG3_ONLY_ATTRIBUTES = {
    "SynthesisNetwork": ("num_fp16_res",),
    "SynthesisBlock": ("fused_modconv_default",),
    "SynthesisLayer": ("in_channels", "out_channels", "w_dim"),
    "ToRGBLayer": ("in_channels", "out_channels", "w_dim"),
    "Conv2dLayer": ("in_channels", "out_channels"),
    "FullyConnectedLayer": ("in_features", "out_features"),
}


@pytest.fixture(scope="module", params=CASES)
def case(request, official_dir):
    return (request.param, *load_case(official_dir, request.param))


@pytest.fixture(scope="module")
def prior(case):
    return from_official(case[1])


def test_mapping_matches_official(prior, case):
    _, _, ref = case
    with torch.no_grad():
        assert max_diff(prior.mapping(ref["z"], ref["c"], truncation_psi=1), ref["w_psi1"]) <= ATOL
        assert max_diff(prior.mapping(ref["z"], ref["c"], truncation_psi=0.7), ref["w_psi0.7"]) <= ATOL
    assert max_diff(prior.w_avg()[0], ref["w_avg"]) <= ATOL
    assert prior.num_ws == int(ref["num_ws"]) == prior.G.mapping.num_ws


def test_truncation_cutoff_only_touches_first_ws(prior, case):
    _, _, ref = case
    with torch.no_grad():
        ws = prior.mapping(ref["z"], ref["c"], truncation_psi=0.7, truncation_cutoff=3)
    assert max_diff(ws[:, :3], ref["w_psi0.7"][:, :3]) <= ATOL
    assert max_diff(ws[:, 3:], ref["w_psi1"][:, 3:]) <= ATOL


@pytest.mark.parametrize("fused", [False, True], ids=["nonfused", "fused"])
def test_synthesis_matches_official(prior, case, fused):
    _, _, ref = case
    with torch.no_grad():
        for mode in ("const", "none"):
            for psi in ("1", "0.7"):
                img = prior.synthesis(ref[f"w_psi{psi}"], noise_mode=mode, fused_modconv=fused)
                assert max_diff(img, ref[f"img_{mode}_psi{psi}"]) <= ATOL, (mode, psi)
        probe = prior.synthesis(ref["w_psi1"] * 200, noise_mode="const", fused_modconv=fused)
    expected = ref["img_const_w_psi1_x200"]
    assert max_diff(probe, expected) <= PROBE_RTOL * expected.abs().max().item()


def test_clamp_probe_needs_conv_clamp(official_dir):
    """Negative control: without conv_clamp=256 the cond model's x200 probe is far off the reference."""
    case_dir = official_dir / "sg2_cond_64_fp16"
    prior = from_official(load_official_pickle(case_dir / "network-snapshot.stripped.pkl"))
    assert prior.G.config()["synthesis_kwargs"]["conv_clamp"] == 256
    config = prior.config()
    config["generator"]["synthesis_kwargs"]["conv_clamp"] = None
    unclamped = from_config(config, prior.state_dict())
    ref = np.load(case_dir / "reference.npz")
    with torch.no_grad():
        probe = unclamped.synthesis(torch.from_numpy(ref["w_psi1"]) * 200)
    assert max_diff(probe, torch.from_numpy(ref["img_const_w_psi1_x200"])) > 100


def test_discriminator_logits_match_official(prior, case):
    _, _, ref = case
    assert prior.has_discriminator
    with torch.no_grad():
        logits = prior.discriminator(ref["img_const_psi1"], ref["c"])
    assert max_diff(logits, ref["d_logits_img_const_psi1"]) <= ATOL


@pytest.mark.parametrize("sg3_case", ["sg3_t_64", "sg3_r_64"])
def test_stylegan3_pickles_carry_this_discriminator(official_dir, sg3_case):
    """stylegan3-repo pickles store a StyleGAN2 D (default conv_clamp=256): same class, same logits."""
    data = load_official_pickle(official_dir / sg3_case / "network-snapshot.stripped.pkl")
    ref = np.load(official_dir / sg3_case / "reference.npz")
    D = discriminator_from_official(data["D"])
    assert D.config()["conv_clamp"] == 256
    with torch.no_grad():
        logits = D(torch.from_numpy(ref["img_const_psi1"]), None)
    assert max_diff(logits, torch.from_numpy(ref["d_logits_img_const_psi1"])) <= ATOL


def test_discriminator_features_are_shallow_to_deep(prior, case):
    _, _, ref = case
    img, c = ref["img_const_psi1"], ref["c"]
    with torch.no_grad():
        feats = prior.discriminator_features(img, c)
        D = prior.D
        logits = D.b4.output(feats[-1], D.mapping(None, c) if D.c_dim else None)
    assert len(feats) == len(D.block_resolutions) + 1
    assert [f.shape[-1] for f in feats[:-1]] == [r // 2 for r in D.block_resolutions]
    assert feats[-1].shape == (img.shape[0], D.b4.in_channels)
    assert max_diff(logits, ref["d_logits_img_const_psi1"]) <= ATOL


def test_feature_loss_scores_each_image_of_a_batch_as_if_alone(prior, case):
    """DGP's feature loss batches images: minibatch-std in groups of one gives each its batch-1 features,
    while the D's own grouping (the training statistic) mixes them."""
    from ganprior.losses.perceptual import discriminator_features

    _, _, ref = case
    img = torch.cat([ref["img_const_psi1"], ref["img_const_psi1"].flip(-1)])[:4]
    calls = []
    real = prior.D.forward_with_features
    with torch.no_grad():
        prior.D.forward_with_features = lambda *a, **k: calls.append(a[0].shape[0]) or real(*a, **k)
        try:
            batched = discriminator_features(prior, img)
        finally:
            del prior.D.forward_with_features
        alone = [discriminator_features(prior, img[i:i + 1]) for i in range(img.shape[0])]
        mixed = prior.discriminator_features(img, torch.zeros(img.shape[0], prior.c_dim) if prior.c_dim else None)
    for k, feature in enumerate(batched):
        assert max_diff(feature, torch.cat([a[k] for a in alone])) <= 1e-5
    assert calls == [img.shape[0]]  # one pass for the whole batch
    assert max_diff(mixed[-1], batched[-1]) > 1e-4


def test_ada_style_nodes_load_the_same(case, prior):
    """ADA-repo pickles lack attributes the stylegan3 repo added; hyper-parameters must not need them."""
    _, data, ref = case
    data = copy.deepcopy(data)

    def strip(node):
        for name in SG3_ONLY_ATTRIBUTES.get(node.class_name, ()):
            assert node.state.pop(name, None) is not None, (node.class_name, name)
        for child in node.children.values():
            if child is not None:
                strip(child)

    strip(data["G_ema"])
    strip(data["D"])
    ada = from_official(data)
    assert ada.config() == prior.config()
    with torch.no_grad():
        assert torch.equal(ada.synthesis(ref["w_psi1"]), prior.synthesis(ref["w_psi1"]))


def test_config_round_trip_is_bit_identical(prior, case):
    _, _, ref = case
    config = json.loads(json.dumps(prior.config()))
    assert config["family"] == "stylegan2"
    clone = from_config(config, prior.state_dict())
    assert all(k.startswith(("G.", "D.")) for k in prior.state_dict())
    with torch.no_grad():
        for fused in (False, True):
            assert torch.equal(clone.synthesis(ref["w_psi1"], fused_modconv=fused),
                               prior.synthesis(ref["w_psi1"], fused_modconv=fused))
        assert torch.equal(clone.mapping(ref["z"], ref["c"], 0.7), prior.mapping(ref["z"], ref["c"], 0.7))
        assert torch.equal(clone.discriminator(ref["img_const_psi1"], ref["c"]),
                           prior.discriminator(ref["img_const_psi1"], ref["c"]))


def test_blocks_are_synthesis_blocks_in_order(prior):
    blocks = prior.blocks()
    assert [b.resolution for b in blocks] == prior.G.synthesis.block_resolutions
    assert blocks[0].resolution == 4 and blocks[-1].resolution == prior.resolution
    mapping_ids = {id(p) for p in prior.G.mapping.parameters()}
    assert not mapping_ids & {id(p) for p in prior.synthesis_parameters()}


# ----- fresh models (training) ---------------------------------------------------------------
def small_prior(g_arch: str = "skip", d_arch: str = "resnet", c_dim: int = 5) -> StyleGAN2Prior:
    torch.manual_seed(0)
    generator = dict(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16,
                     mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=128, channel_max=16, architecture=g_arch, conv_clamp=256))
    discriminator = dict(c_dim=c_dim, img_resolution=16, architecture=d_arch, channel_base=128, channel_max=16,
                         mbstd_group_size=2, mapping_kwargs=dict(num_layers=2))
    prior = StyleGAN2Prior(generator, discriminator)
    with torch.no_grad():  # leave the all-zero init so fused/non-fused and noise paths are exercised
        for name, p in prior.named_parameters():
            if name.endswith(("bias", "noise_strength")):
                p.add_(0.1 * torch.randn_like(p))
    return prior


@pytest.mark.parametrize("g_arch,d_arch", [("skip", "resnet"), ("resnet", "skip"), ("orig", "orig")])
def test_fresh_architectures_fused_equals_nonfused(g_arch, d_arch):
    prior = small_prior(g_arch, d_arch)
    z, c = torch.randn(4, 16), prior.class_matrix([0, 1, 2, 3], 4)
    with torch.no_grad():
        ws = prior.mapping(z, c)
        a = prior.synthesis(ws, fused_modconv=False)
        b = prior.synthesis(ws, fused_modconv=True)
        logits = prior.discriminator(a, c)
    assert a.shape == (4, 3, 16, 16) and logits.shape == (4, 1)
    assert max_diff(a, b) <= 1e-5
    assert torch.isfinite(logits).all()
    assert from_config(json.loads(json.dumps(prior.config())), prior.state_dict()).config() == prior.config()


@pytest.mark.parametrize("fused", [False, True], ids=["nonfused", "fused"])
def test_gradients_reach_ws_and_every_synthesis_parameter(fused):
    prior = small_prior().train()
    ws = prior.mapping(torch.randn(2, 16), prior.class_matrix([1, 4], 2)).detach().requires_grad_(True)
    img = prior.synthesis(ws, noise_mode="random", fused_modconv=fused)
    img.square().mean().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0
    for name, p in prior.G.synthesis.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_generator_and_discriminator_train_step():
    """G loss reaches the mapping; D's R1 penalty (double backward) gives finite gradients."""
    prior = small_prior().train()
    z, c = torch.randn(4, 16), prior.class_matrix([0, 1, 2, 3], 4)
    fake = prior.G(z, c)
    torch.nn.functional.softplus(-prior.D(fake, c)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in prior.G.mapping.parameters())

    prior.zero_grad()
    real = torch.randn(4, 3, 16, 16).requires_grad_(True)
    logits = prior.D(real, c)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    grad.square().sum(dim=[1, 2, 3]).mean().backward()
    for name, p in prior.D.named_parameters():
        if name != "b4.out.bias":  # the last bias does not change d(logit)/d(img)
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_update_emas_moves_w_avg_toward_batch_mean():
    prior = small_prior()
    mapping = prior.G.mapping
    z, c = torch.randn(8, 16), prior.class_matrix(list(range(5)) + [0, 1, 2], 8)
    with torch.no_grad():
        before = mapping.w_avg.clone()
        w = mapping(z, c, update_emas=True)[:, 0]
        expected = w.mean(0).lerp(before, mapping.w_avg_beta)
        assert torch.allclose(mapping.w_avg, expected)
        mapping(z, c)
        assert torch.allclose(mapping.w_avg, expected)  # no update unless asked


def test_bad_inputs_give_clear_errors():
    prior = small_prior()
    with pytest.raises(ValueError, match="ws must be"):
        prior.synthesis(torch.zeros(1, prior.num_ws + 1, prior.w_dim))
    with pytest.raises(ValueError, match="class-conditional"):
        prior.mapping(torch.zeros(1, 16))
    with pytest.raises(ValueError, match="noise_mode"):
        prior.synthesis(torch.zeros(1, prior.num_ws, prior.w_dim), noise_mode="fixed")
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(c_dim=0, img_resolution=48)
    with pytest.raises(ValueError, match="group size"):
        prior.D(torch.zeros(3, 3, 16, 16), prior.class_matrix(0, 3))
    with pytest.raises(ValueError, match="family"):
        from_config({"family": "biggan"}, {})
    with pytest.raises(ValueError, match="unknown MappingNetwork arguments"):
        StyleGAN2Prior(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, mapping_kwargs=dict(layers=2)))


def test_generator_only_prior_round_trips():
    prior = StyleGAN2Prior(small_prior().config()["generator"])
    assert not prior.has_discriminator and all(k.startswith("G.") for k in prior.state_dict())
    clone = from_config(json.loads(json.dumps(prior.config())), prior.state_dict())
    ws = prior.w_avg().unsqueeze(1).repeat(1, prior.num_ws, 1) + torch.randn(1, prior.num_ws, prior.w_dim)
    with torch.no_grad():
        assert torch.equal(clone.synthesis(ws), prior.synthesis(ws))
    with pytest.raises(NotImplementedError):
        prior.discriminator_features(torch.zeros(1, 3, 16, 16))
