"""BigGAN (DGP layout): parity with DGP's official code on the biggan_128 fixture, loader, DGP specifics."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from ganprior.models import biggan
from ganprior.models.biggan import (
    PRESETS,
    BigGANConfig,
    BigGANPrior,
    CheckpointMismatchError,
    Discriminator,
    Generator,
    SelfAttention,
)

TOL = 1e-4
TINY = BigGANConfig(resolution=32, G_ch=4, D_ch=4, dim_z=20, shared_dim=8, n_classes=10, G_attn="16", D_attn="16")


def _max_diff(ours: torch.Tensor, official: np.ndarray) -> float:
    assert tuple(ours.shape) == official.shape
    return float((ours - torch.from_numpy(official)).abs().max())


@pytest.fixture(scope="module")
def case(official_dir):
    d = official_dir / "biggan_128"
    ref = dict(np.load(d / "reference.npz"))
    args = json.loads((d / "config.json").read_text())["config"]
    prior = biggan.load_biggan(d / "G_ema_128.pth", d / "D_128.pth")
    return d, ref, args, prior


def _tiny_prior(seed: int = 0, with_discriminator: bool = True) -> BigGANPrior:
    """Random tiny BigGAN whose attention, BN statistics and affine params are all non-trivial."""
    torch.manual_seed(seed)
    prior = BigGANPrior(TINY, with_discriminator=with_discriminator)
    with torch.no_grad():
        for name, t in prior.state_dict(keep_vars=True).items():
            if name.endswith("gamma"):
                t.fill_(0.5)
            elif name.endswith(("stored_mean", "output_layer.0.bias")):
                t.normal_(0, 0.1)
            elif name.endswith(("stored_var", "output_layer.0.gain")):
                t.uniform_(0.5, 1.5)
    return prior


# ----- parity with the official code ----------------------------------------------------------


def test_generator_matches_official(case):
    _, ref, _, prior = case
    z, y = torch.from_numpy(ref["z"]), torch.from_numpy(ref["y"])
    with torch.no_grad():
        embedding = prior.class_embedding(y)
        assert _max_diff(embedding, ref["shared_y"]) <= TOL
        assert _max_diff(prior.render(z, embedding), ref["img"]) <= TOL
        one_hot = torch.nn.functional.one_hot(y, 1000).float()
        assert _max_diff(prior(z, one_hot), ref["img"]) <= TOL  # mapping -> synthesis with c


@pytest.mark.parametrize("image", ["img", "real"])
def test_discriminator_matches_official(case, image):
    _, ref, _, prior = case
    x = torch.from_numpy(ref["img" if image == "img" else "x_real"])
    with torch.no_grad():
        out, feats = prior.discriminate(x)
        assert len(feats) == 8
        assert _max_diff(out, ref[f"d_out_{image}"]) <= TOL
        for i, f in enumerate(feats):
            assert _max_diff(f, ref[f"d_feat_{image}_{i}"]) <= TOL, f"feature {i}"
        assert all(torch.equal(a, b) for a, b in zip(prior.discriminator_features(x), feats))
        if image == "img":
            _, raw = prior.discriminate(x, relu_last_feature=False)
            assert _max_diff(raw[6], ref["d_feat_img_6_before_inplace_relu"]) <= TOL
            assert float(raw[6].min()) < 0 <= float(feats[6].min())
            y = torch.from_numpy(ref["y"])
            assert _max_diff(prior.discriminate(x, y)[0], ref["d_out_img_with_y"]) <= TOL
            one_hot = torch.nn.functional.one_hot(y, 1000).float()
            assert _max_diff(prior.discriminate(x, one_hot)[0], ref["d_out_img_with_y"]) <= TOL


def test_official_state_dict_names(case):
    d, _, _, prior = case
    cfg = prior.arch_config
    g_state = torch.load(d / "G_ema_128.pth", weights_only=True)
    d_state = torch.load(d / "D_128.pth", weights_only=True)
    assert not any(Generator(cfg).load_state_dict(g_state, strict=True))
    assert not any(Discriminator(cfg).load_state_dict(d_state, strict=True))
    keys = set(prior.state_dict())
    assert keys == {f"G.{k}" for k in g_state} | {f"D.{k}" for k in d_state}


def test_inferred_config_matches_official_args(case):
    d, ref, args, prior = case
    official = biggan.config_from_dgp_args(args)
    assert {k: getattr(prior.arch_config, k) for k in official} == official
    again = biggan.load_biggan(d / "G_ema_128.pth", d / "D_128.pth", config=official)
    z, y = torch.from_numpy(ref["z"][:1]), torch.from_numpy(ref["y"][:1])
    with torch.no_grad():
        assert torch.equal(again.render(z, again.class_embedding(y)), prior.render(z, prior.class_embedding(y)))


def test_biggan_pytorch_checkpoint_without_instance_norm_keys(case):
    d, ref, _, prior = case
    g_state = {k: v for k, v in torch.load(d / "G_ema_128.pth", weights_only=True).items() if ".in1." not in k
               and ".in2." not in k}
    generator_only = biggan.from_state_dicts(g_state)
    assert not generator_only.has_discriminator
    z, y = torch.from_numpy(ref["z"][:1]), torch.from_numpy(ref["y"][:1])
    with torch.no_grad():
        assert torch.equal(generator_only(z, prior.class_matrix(y, 1)), prior(z, prior.class_matrix(y, 1)))


def test_mismatches_give_one_clear_error(case, tmp_path):
    d, _, _, prior = case
    g_state = torch.load(d / "G_ema_128.pth", weights_only=True)
    with pytest.raises(CheckpointMismatchError, match="G_ch 96 expected, file has 16"):
        biggan.load_biggan(d / "G_ema_128.pth", config=128)
    with pytest.raises(CheckpointMismatchError, match="missing"):
        biggan.from_state_dicts({k: v for k, v in g_state.items() if k != "blocks.2.0.conv1.u0"})
    with pytest.raises(CheckpointMismatchError, match="wrong shape"):
        biggan.from_state_dicts(g_state, config={"shared_dim": 64, "dim_z": 120})
    with pytest.raises(ValueError, match="unknown BigGAN preset"):
        biggan.load_biggan(g_state, config="biggan-deep")
    torch.save([1, 2], tmp_path / "G_ema_x.pth")
    with pytest.raises(CheckpointMismatchError, match="not a state dict"):
        biggan.load_biggan(tmp_path / "G_ema_x.pth")
    with pytest.raises(ValueError, match=r"z must be \[N, 120\]"):
        prior.mapping(torch.zeros(1, 128))
    with pytest.raises(ValueError, match="out of range"):
        prior.class_embedding([1000])
    with pytest.raises(ValueError, match="class-conditional"):
        prior.synthesis(torch.zeros(1, 1, 120))
    with pytest.raises(ValueError, match=r"\[N, 3, 128, 128\]"):
        prior.discriminator_features(torch.zeros(1, 3, 64, 64))


# ----- released configurations (built on the meta device: shapes only, no memory) --------------


def _meta_networks(cfg: BigGANConfig, with_d: bool):
    with torch.device("meta"):
        return Generator(cfg), (Discriminator(cfg) if with_d else None)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_recovered_from_shapes(name):
    cfg = PRESETS[name]
    with_d = not name.startswith("tfhub")
    G, D = _meta_networks(cfg, with_d)
    inferred = biggan.infer_config(G.state_dict(), D.state_dict() if D else None)
    expected = dataclasses.asdict(dataclasses.replace(cfg, dim_z=cfg.effective_dim_z))
    if name == "tfhub_128":  # same shapes as DGP's 128 px model: DGP's eps take precedence (documented)
        expected.update(BN_eps=PRESETS["128"].BN_eps, SN_eps=PRESETS["128"].SN_eps)
    if with_d:
        assert inferred == expected
    else:
        assert {k: v for k, v in inferred.items() if not k.startswith(("D_", "num_D"))} == \
            {k: v for k, v in expected.items() if not k.startswith(("D_", "num_D"))}


@pytest.mark.parametrize("name, g_millions, d_millions, group0, group_k", [
    ("128", 70.43, 87.98, 516_096, [45.7, 17.8, 4.62, 1.29, 0.35]),
    ("256", 82.11, 99.23, 442_368, [45.7, 17.8, 11.7, 4.80, 1.24, 0.35]),
    ("ch64_256", 37.24, 44.45, None, None),
])
def test_released_architectures_have_official_sizes(name, g_millions, d_millions, group0, group_k):
    """Parameter counts from dgp_spec §1.4/§5.2 (without DGP's IN parameters)."""
    G, D = _meta_networks(PRESETS[name], True)
    count = sum(p.numel() for n, p in G.named_parameters() if ".in1." not in n and ".in2." not in n)
    assert round(count / 1e6, 2) == g_millions
    assert round(sum(p.numel() for p in D.parameters()) / 1e6, 2) == d_millions
    assert PRESETS[name].effective_dim_z == (120 if name == "128" else 119)
    if group0 is not None:
        assert sum(p.numel() for p in G.output_layer.parameters()) == 2787
        assert sum(p.numel() for p in G.linear.parameters()) == group0
        sizes = [sum(p.numel() for p in g.parameters()) / 1e6 for g in G.blocks]
        assert [round(s, 2 if s < 10 else 1) for s in sizes] == group_k


def test_no_official_discriminator_at_512():
    with pytest.raises(ValueError, match="no discriminator for 512"):
        Discriminator(PRESETS["tfhub_512"])


# ----- DGP behaviour --------------------------------------------------------------------------


def test_blocks_follow_dgp_parameter_groups(case):
    prior = case[3]
    groups = prior.blocks()
    assert len(groups) == 6 and groups[0] is prior.G.linear
    assert isinstance(groups[4][1], SelfAttention)  # attention travels with the 32->64 block
    grouped = {id(p) for g in prior.parameter_groups() for p in g}
    assert not any(id(p) in grouped for p in prior.G.output_layer.parameters())
    assert id(prior.G.shared.weight) not in grouped
    assert id(prior.G.shared.weight) in {id(p) for p in prior.parameter_groups(update_embed=True)[0]}
    assert sum(len(g) for g in prior.parameter_groups()) + 4 + 1 == len(list(prior.G.parameters()))


def test_unselected_groups_stay_frozen_under_dgp_optimiser():
    """DGP: one Adam over all groups, lr 0 for groups >= ft_num; frozen groups and all buffers must not move."""
    prior = _tiny_prior()
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    groups = prior.parameter_groups()
    optimiser = torch.optim.Adam([{"params": g} for g in groups], betas=(0.0, 0.999), eps=1e-8)
    ft_num = 2
    for i, group in enumerate(optimiser.param_groups):
        group["lr"] = 1e-2 if i < ft_num else 0.0
    z = prior.sample_z(1, torch.Generator().manual_seed(1), std=0.3)
    target = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        target_feats = prior.discriminator_features(target)
    for _ in range(3):
        optimiser.zero_grad()
        feats = prior.discriminator_features(prior.render(z, prior.class_embedding([3])))
        loss = sum((a - b).abs().mean() for a, b in zip(feats, target_feats))
        loss.backward()
        optimiser.step()
    moved = {k for k, v in prior.state_dict().items() if not torch.equal(v, before[k])}
    trained = {f"G.{n}" for n, p in prior.G.named_parameters()
               if any(p is q for g in groups[:ft_num] for q in g) and p.requires_grad}
    assert moved == trained and trained  # buffers (SN u0, BN stats) and the other groups untouched


def test_instance_norm_swap_follows_dgp():
    prior = _tiny_prior(with_discriminator=False)
    z = prior.sample_z(1, torch.Generator().manual_seed(0)).requires_grad_(True)
    embedding = prior.class_embedding([2]).detach().requires_grad_(True)
    block = prior.G.blocks[0][0]

    prior.render(z, embedding).sum().backward()
    assert embedding.grad.abs().sum() > 0 and z.grad[:, 5:].abs().sum() > 0

    prior.use_instance_norm()
    z.grad = embedding.grad = None
    with torch.no_grad():  # what IN will be initialised from: bn1 on the block input, unbiased std
        h0 = prior.G.linear(z[:, :5]).view(1, -1, 4, 4)
        expected = block.bn1(h0, torch.cat([embedding, z[:, 5:10]], 1))
    image = prior.render(z, embedding)
    assert block.in_initialized
    assert torch.allclose(block.in1.weight, expected.flatten(2).std(2)[0])
    assert torch.allclose(block.in1.bias, expected.mean((2, 3))[0])
    image.sum().backward()
    assert embedding.grad is None  # the embedding no longer reaches the image at all
    assert float(z.grad[:, 5:].abs().max()) == 0.0
    assert z.grad[:, :5].abs().sum() > 0  # only the chunk feeding G.linear still matters
    assert not any(p.requires_grad for p in (*block.in1.parameters(), *block.in2.parameters()))

    frozen = block.in1.weight.clone()
    prior.render(z * 0.5, embedding)
    assert torch.equal(block.in1.weight, frozen)  # initialised once ...
    prior.reset_instance_norm()
    prior.render(z * 0.5, embedding)
    assert not torch.equal(block.in1.weight, frozen)  # ... until reset (DGP: per image)
    prior.use_instance_norm(False)
    prior.render(z, embedding)
    assert not block.in_initialized  # a BN forward also forces re-initialisation


def test_soft_classes_embed_linearly():
    prior = _tiny_prior(with_discriminator=False)
    one_hot = torch.nn.functional.one_hot(torch.tensor([1, 7]), 10).float()
    assert torch.equal(prior.class_embedding(one_hot), prior.G.shared(torch.tensor([1, 7])))
    mix = 0.3 * one_hot[:1] + 0.7 * one_hot[1:]
    expected = 0.3 * prior.G.shared.weight[1] + 0.7 * prior.G.shared.weight[7]
    assert torch.allclose(prior.class_embedding(mix)[0], expected, atol=1e-7)


def test_latent_interface():
    prior = _tiny_prior(with_discriminator=False)
    assert (prior.num_ws, prior.w_dim, prior.z_dim, prior.c_dim, prior.has_mapping) == (1, 20, 20, 10, False)
    z = prior.sample_z(3, torch.Generator().manual_seed(4), std=0.5)
    assert torch.equal(z, 0.5 * prior.sample_z(3, torch.Generator().manual_seed(4)))
    assert torch.equal(prior.mapping(z), z[:, None])
    assert torch.equal(prior.mapping(z, truncation_psi=0.5), 0.5 * z[:, None])
    assert torch.equal(prior.w_avg(torch.zeros(3, 10)), torch.zeros(3, 20))
    image = prior.sample(3, classes=[0, 4, 9])
    assert image.shape == (3, 3, 32, 32) and float(image.abs().max()) <= 1


def test_config_round_trip_is_bit_identical():
    prior = _tiny_prior(seed=3)
    config = json.loads(json.dumps(prior.config()))
    assert config["family"] == "biggan" and config["with_discriminator"] is True
    rebuilt = biggan.from_config(config, prior.state_dict())
    assert rebuilt.config() == prior.config()
    z = prior.sample_z(2, torch.Generator().manual_seed(0))
    c = prior.class_matrix([1, 2], 2)
    with torch.no_grad():
        a, b = prior(z, c), rebuilt(z, c)
        assert torch.equal(a, b)
        for fa, fb in zip(prior.discriminate(a, c)[1], rebuilt.discriminate(b, c)[1]):
            assert torch.equal(fa, fb)
    with pytest.raises(ValueError, match="unknown BigGAN config keys"):
        biggan.from_config({**config, "G_lr": 1e-4}, prior.state_dict())


# ----- speed-ups: same results as the plain formulation, cache never stale --------------------


@pytest.mark.parametrize("shape", [(1, 6, 8, 8), (4, 6, 32, 32)])  # below / above the fused-kernel thresholds
def test_resampling_convs_equal_the_official_formulation(shape):
    torch.manual_seed(0)
    conv = biggan.SNConv2d(6, 5, 3, padding=1, eps=1e-6).eval()
    x = torch.randn(shape, requires_grad=True)
    weight = torch.randn(5, 6, 3, 3)
    cases = [  # (ours, the official op order)
        (lambda: biggan._upsample_conv3x3(x, conv), lambda: conv(torch.nn.functional.interpolate(x, scale_factor=2))),
        (lambda: biggan._conv3x3_avg_pool(x, conv), lambda: torch.nn.functional.avg_pool2d(conv(x), 2)),
        (lambda: biggan._add_upsampled(conv(torch.nn.functional.interpolate(x, scale_factor=2)), conv(x)),
         lambda: conv(torch.nn.functional.interpolate(x, scale_factor=2))
         + torch.nn.functional.interpolate(conv(x), scale_factor=2)),
    ]
    for ours, official in cases:
        results = []
        for fn in (ours, official):
            with torch.no_grad():
                conv.weight.copy_(weight)
            out = fn()
            weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
            grads = torch.autograd.grad((out * weights).sum(), [x, conv.weight, conv.bias])
            results.append([out.detach(), *grads])
        for a, b in zip(*results):
            assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())  # float rounding


@pytest.mark.parametrize("shape", [(1, 6, 8, 8), (1, 6, 16, 16)])  # below / above the frozen-weight threshold
def test_frozen_upsample_conv_equals_the_official_formulation(shape):
    """With G frozen (inversion, candidate selection) the transposed conv starts at fewer pixels than when tuned."""
    torch.manual_seed(0)
    conv = biggan.SNConv2d(6, 5, 3, padding=1, eps=1e-6).eval().requires_grad_(False)
    x = torch.randn(shape, requires_grad=True)
    assert (shape[2] * shape[3] >= biggan._MIN_PIXELS_FOR_TRANSPOSED_CONV) == (shape[2] == 16)
    results = []
    for out in (biggan._upsample_conv3x3(x, conv), conv(torch.nn.functional.interpolate(x, scale_factor=2))):
        results.append([out.detach(), *torch.autograd.grad(out.square().sum(), x)])
    for a, b in zip(*results):
        assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())


def test_self_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    attention = SelfAttention(16, biggan._SpectralNorm(1, 1, 1e-6)).eval()
    with torch.no_grad():
        attention.gamma.fill_(0.7)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    ours = attention(x)
    theta = attention.theta(x).flatten(2)
    phi = torch.nn.functional.max_pool2d(attention.phi(x), 2).flatten(2)
    g = torch.nn.functional.max_pool2d(attention.g(x), 2).flatten(2)
    beta = torch.softmax(theta.transpose(1, 2) @ phi, -1)
    official = attention.gamma * attention.o((g @ beta.transpose(1, 2)).view(2, 8, 8, 8)) + x
    assert torch.allclose(ours, official, atol=1e-5)
    grad_ours, grad_official = (torch.autograd.grad(out.square().sum(), x)[0] for out in (ours, official))
    assert torch.allclose(grad_ours, grad_official, rtol=1e-4, atol=1e-5)


def test_activation_layout_after_attention():
    """D's convs all see contiguous NCHW input (a channels-last view leaking out of its attention made every
    later conv re-lay out its 1536-channel weight per call); G's after its attention see channels-last."""
    prior = _tiny_prior()
    layouts: dict[str, list[bool]] = {"G": [], "D": []}
    hooks = [m.register_forward_pre_hook(lambda m, args, net=net: layouts[net].append(args[0].is_contiguous()))
             for net in ("G", "D") for m in getattr(prior, net).modules() if isinstance(m, biggan.SNConv2d)]
    z, c = prior.sample_z(2, torch.Generator().manual_seed(0)), prior.class_matrix([1, 5], 2)
    with torch.no_grad():
        image = prior(z, c)
        prior.discriminate(image)
    for hook in hooks:
        hook.remove()
    assert image.is_contiguous()  # what D, losses and callers get
    assert len(layouts["D"]) > 10 and all(layouts["D"])
    assert not layouts["G"][-1]  # G's output conv runs after the attention at 16 px
    with torch.no_grad():
        for net in ("G", "D"):
            for m in getattr(prior, net).modules():
                if isinstance(m, SelfAttention):
                    assert m.channels_last == (net == "G")


def test_cached_spectral_norm_follows_every_weight_change():
    """A frozen eval-mode prior reuses its normalised weights; after an optimiser step, an in-place edit,
    a ``.data`` swap or a new ``u``, its output still equals a freshly built prior's."""
    prior = _tiny_prior()
    layer = prior.G.blocks[0][0].conv1
    z, c = prior.sample_z(2, torch.Generator().manual_seed(0)), prior.class_matrix([1, 5], 2)

    def fresh_output() -> torch.Tensor:
        fresh = BigGANPrior(TINY)
        fresh.load_state_dict(prior.state_dict())
        with torch.no_grad():
            return fresh.discriminate(fresh(z, c))[0]

    def output() -> torch.Tensor:
        prior.requires_grad_(False)
        with torch.no_grad():
            return prior.discriminate(prior(z, c))[0]

    assert torch.equal(output(), fresh_output())
    assert layer.normalized_weight() is layer.normalized_weight()  # cached while frozen ...
    with torch.enable_grad():
        layer.weight.requires_grad_(True)
        assert layer.normalized_weight().requires_grad  # ... but never when a gradient is wanted

    prior.G.requires_grad_(True)
    optimizer = torch.optim.Adam(prior.G.parameters(), lr=1e-2)
    prior.render(z, prior.class_embedding(c)).square().mean().backward()
    optimizer.step()
    assert torch.equal(output(), fresh_output())
    noise = torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(1))
    edits = [lambda: layer.weight[0].mul_(0.5),  # not all of it: the normalised weight is scale-invariant
             lambda: setattr(layer, "weight", torch.nn.Parameter(layer.weight + 0.1 * noise)),
             lambda: setattr(layer.weight, "data", layer.weight.data - 0.1 * noise), lambda: layer.u0.copy_(layer.u0.flip(1)),
             lambda: prior.D.blocks[0][0].conv2.weight[0].add_(0.1)]
    for edit in edits:
        before = output()
        with torch.no_grad():
            edit()
        after = output()
        assert not torch.equal(before, after) and torch.equal(after, fresh_output())


def test_copies_start_with_an_empty_spectral_norm_cache():
    prior = _tiny_prior(with_discriminator=False).requires_grad_(False)
    layer = prior.G.linear
    layer.normalized_weight()
    assert layer._sn_cache.entry is not None
    copied = copy.deepcopy(prior)
    assert copied.G.linear._sn_cache.entry is None
    with torch.no_grad():
        copied.G.linear.weight.add_(torch.randn_like(copied.G.linear.weight))
    assert not torch.equal(copied.G.linear.normalized_weight(), layer.normalized_weight())
