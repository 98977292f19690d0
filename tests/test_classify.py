"""ImageNet class inference: the --class grammar, DeiT's preprocessing against hand-computed values,
the real DeiT-B architecture (untrained, offline), the offline message, and top-K plumbing into
CRI (restricted bank search), W (StyleGAN-XL-style w_avg classes) and DGP (class sampling)."""

from __future__ import annotations

import sys

import pytest
import torch

from ganprior.classify import ClassCandidates, ClassOptionError, parse_class_option, preprocess
from ganprior.classify import deit
from ganprior.classify.resolve import choose_class
from ganprior.methods import get_method_class
from ganprior.methods.centroids import start_classes
from ganprior.methods.dgp import DGPLoss, select_latent
from ganprior.degradations import parse_task

MEAN = torch.tensor(deit.IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(deit.IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def untrained_deit():
    pytest.importorskip("timm", reason="ganprior[classify] (timm) not installed")
    torch.manual_seed(0)
    return deit.build_deit(pretrained=False)


# ----- grammar -----------------------------------------------------------------------------------
def test_class_option_grammar():
    assert parse_class_option("auto").kind == "auto"
    top = parse_class_option("topk:5")
    assert (top.kind, top.k, top.needs_classifier) == ("topk", 5, True)
    assert parse_class_option("207").given() == 207
    listed = parse_class_option("1, 5,9").given()
    assert isinstance(listed, ClassCandidates) and listed.indices == (1, 5, 9)
    assert listed.weights == pytest.approx((1 / 3,) * 3)
    names = {"goldfish": 1, "tench": 0}
    assert parse_class_option("tench,goldfish", resolve_token=names.__getitem__).indices == (0, 1)
    for bad in ("topk:0", "topk:x", "dog", "1,,2", "3,3", ""):
        with pytest.raises(ClassOptionError):
            parse_class_option(bad)


# ----- preprocessing -----------------------------------------------------------------------------
def test_timm_preprocessing_matches_a_hand_computed_crop():
    """248 px short side needs no resize: the output is the centre 224 crop (rows 12.., cols 38..)
    of (x + 1) / 2, normalised with ImageNet's mean/std."""
    h, w = 248, 300
    ramp = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w) / (h * w)
    x = torch.cat([ramp, 1 - ramp, ramp.flip(-1)], 1) * 2 - 1
    out = preprocess(x, "timm")
    assert out.shape == (1, 3, 224, 224)
    for ch, y0, x0 in [(0, 0, 0), (1, 100, 37), (2, 223, 223)]:
        v = (x[0, ch, 12 + y0, 38 + x0] + 1) / 2
        expected = (v - deit.IMAGENET_MEAN[ch]) / deit.IMAGENET_STD[ch]
        assert float(out[0, ch, y0, x0]) == pytest.approx(float(expected), abs=1e-6)
    grey = torch.full((1, 1, 100, 180), 0.2)  # any size; grey (1 channel) is replicated
    assert torch.allclose(preprocess(grey), ((0.6 - MEAN) / STD).expand(1, 3, 224, 224), atol=1e-5)


def test_timm_preprocessing_is_deit_s_own_eval_transform(untrained_deit):
    import timm
    from torchvision import transforms as T

    cfg = timm.data.resolve_data_config({}, model=untrained_deit)
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["mean"], cfg["std"]) == (
        deit.CROP_PCT, "bicubic", deit.IMAGENET_MEAN, deit.IMAGENET_STD)
    ref = T.Compose([T.Resize(int(224 / cfg["crop_pct"]), T.InterpolationMode.BICUBIC, antialias=True),
                     T.CenterCrop(224), T.Normalize(cfg["mean"], cfg["std"])])
    x = torch.rand(1, 3, 301, 457, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(preprocess(x, "timm")[0], ref((x[0] + 1) / 2), atol=1e-5)


def test_stylegan_xl_preprocessing_is_nearest_resize_without_normalisation():
    x = torch.rand(1, 3, 448, 448) * 2 - 1
    out = preprocess(x, "stylegan-xl")
    assert torch.equal(out, x[..., ::2, ::2])  # F.interpolate's default (nearest) picks pixel 2i
    with pytest.raises(ValueError, match="timm"):
        preprocess(x, "bilinear")


# ----- the network -----------------------------------------------------------------------------------
def test_deit_architecture_and_top_k(untrained_deit):
    obs = torch.rand(1, 3, 97, 150, generator=torch.Generator().manual_seed(1)) * 2 - 1
    probs = deit.class_probabilities(untrained_deit, obs)
    assert probs.shape == (1, 1000) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert sum(p.numel() for p in untrained_deit.parameters()) == pytest.approx(87.3e6, rel=0.01)
    top, mass = deit.predict_classes(obs, 4, net=untrained_deit)
    assert list(top.indices) == probs[0].topk(4).indices.tolist()
    assert mass == pytest.approx(float(probs[0].topk(4).values.sum()), rel=1e-5)
    assert sum(top.weights) == pytest.approx(1.0) and list(top.weights) == sorted(top.weights, reverse=True)


def test_offline_gives_one_message_then_the_centroid_search(monkeypatch):
    monkeypatch.setattr(deit, "cached_weights", lambda: None)
    monkeypatch.setattr(deit, "_online", lambda host="huggingface.co": False)
    deit.pretrained_deit.cache_clear()
    with pytest.raises(deit.ClassifierUnavailable) as err:
        deit.build_deit(pretrained=True)
    message = str(err.value)
    assert deit.DEIT_FILE in message and deit.DEIT_HUB_REPO in message and deit.hub_cache_dir() in message
    said = []
    chosen, record = choose_class(1000, "topk:3", torch.zeros(1, 3, 32, 32), warn=said.append)
    assert chosen is None and record["classifier"] == "unavailable" and len(said) == 1
    assert "centroid search" in said[0] and deit.DEIT_FILE in said[0]
    monkeypatch.setitem(sys.modules, "timm", None)  # without the extra: the same kind of message
    said.clear()
    assert choose_class(1000, "auto", torch.zeros(1, 3, 32, 32), warn=said.append)[0] is None
    assert "ganprior[classify]" in said[0] and deit.DEIT_FILE in said[0] and deit.hub_cache_dir() in said[0]
    # a list needs no classifier at all; another dataset's model keeps its own search
    assert choose_class(1000, "3,4", torch.zeros(1, 3, 8, 8))[0].indices == (3, 4)
    assert choose_class(9, None, torch.zeros(1, 3, 8, 8)) == (None, {})
    with pytest.raises(ClassOptionError, match="1,000"):
        choose_class(9, "topk:2", torch.zeros(1, 3, 8, 8))


# ----- plumbing into the methods --------------------------------------------------------------------
def _tiny_biggan():
    from ganprior.models.biggan import BigGANConfig, BigGANPrior

    torch.manual_seed(0)
    return BigGANPrior(BigGANConfig(resolution=32, G_ch=8, D_ch=8, dim_z=20, shared_dim=16, n_classes=10,
                                    G_attn="0", D_attn="0"))


def test_dgp_samples_its_candidate_classes_from_the_top_k():
    prior = _tiny_biggan()
    with torch.no_grad():
        obs = prior.sample(1, classes=2, seed=3)
    degradation = parse_task("colorize")
    loss = DGPLoss(prior, degradation, degradation(obs), None)
    only = ClassCandidates((6, 8), (1.0, 0.0), "deit-topk")
    sel = select_latent(prior, loss, only, n=12, std=1.0, chunk=6)
    assert sel.class_index == 6 and sel.class_sampled
    pair = ClassCandidates((6, 8), (0.5, 0.5), "deit-topk")
    picked = {select_latent(prior, loss, pair, n=12, std=1.0, seed=s).class_index for s in range(6)}
    assert picked <= {6, 8}
    result = get_method_class("dgp")(table="fast", select_num=8, max_stage_steps=1).run(
        prior, degradation, degradation(obs), class_index=pair, progress=False)
    assert result.class_index in (6, 8) and result.class_source == "deit-topk+dgp-selection"
    assert result.extras["class_weights"] == {"6": 0.5, "8": 0.5}


def test_w_start_draws_its_classes_from_the_weights():
    prior = _tiny_biggan()
    rows = start_classes(prior, ClassCandidates((1, 4), (0.8, 0.2), "deit-topk"), prior.class_matrix(1, 1), 4000, 0)
    counts = rows.sum(0)
    assert float(counts.sum()) == 4000 and float(counts[1] + counts[4]) == 4000
    assert float(counts[1]) / 4000 == pytest.approx(0.8, abs=0.03)
    one_hot = prior.class_matrix(3, 1)
    assert start_classes(prior, 3, one_hot, 10, 0) is one_hot


def test_cri_searches_only_the_top_k_banks(untrained_deit, official_dir, monkeypatch):
    """End to end through ganprior.restore on the StyleGAN-XL fixture (1,000 ImageNet classes):
    DeiT's top-2 on the degraded photo becomes CRI's candidate set."""
    import ganprior
    from ganprior.models.stylegan_xl import from_official
    from official_cases import load_case

    prior = from_official(load_case(official_dir, "sgxl_16")[0])
    monkeypatch.setattr(deit, "pretrained_deit", lambda: untrained_deit)
    photo = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1).expand(-1, 3, -1, -1)
    expected = deit.predict_classes(photo, 2, net=untrained_deit)[0]  # a grey photo is its own observation
    result = ganprior.restore(photo, task="colorize", method="cri", model=prior, class_index="topk:2", steps=1,
                              progress=False, options=dict(n_clusters=2, n_samples=40, perceptual="mse"))
    assert set(result.config["class_choice"]["top_k"]) == {str(i) for i in expected.indices}
    assert result.class_index in expected.indices
    assert result.result.class_source == "deit-top2+centroid-search"
    assert set(result.result.extras["class_candidates"]) == {str(i) for i in expected.indices}


def test_dgp_gets_deit_s_top_k_through_the_api(untrained_deit, official_dir, monkeypatch):
    """BigGAN (DGP's 1,000-class fixture): DeiT's top-3 on the photo is the set DGP samples classes from."""
    import ganprior
    from ganprior.api import load_prior

    prior = load_prior(official_dir / "biggan_128" / "G_ema_128.pth")
    monkeypatch.setattr(deit, "pretrained_deit", lambda: untrained_deit)
    photo = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1).expand(-1, 3, -1, -1)
    top = deit.predict_classes(photo, 3, net=untrained_deit)[0]
    result = ganprior.restore(photo, task="colorize", method="dgp", model=prior, class_index="topk:3", steps=1,
                              progress=False, options=dict(select_num=6))
    assert result.class_index in top.indices and result.result.class_source == "deit-top3+dgp-selection"
    assert result.result.extras["class_weights"] == pytest.approx(top.describe())
