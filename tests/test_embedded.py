"""The embedded default model: emoji-feature-net, shipped centroid banks, the build script, and the
shipped asset itself (loads with no pickle, restores with no network or k-means)."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ganprior.loading import attach_embedded_extras, load_model, save_native
from ganprior.loading.registry import EMBEDDED_BANKS_FILE, EMBEDDED_FEATURE_NET_FILE, EMBEDDED_FILE, embedded_dir
from ganprior.losses import get_perceptual
from ganprior.methods import centroids
from ganprior.models import feature_net as fnet
from ganprior.models.stylegan2 import StyleGAN2Prior

ROOT = Path(__file__).resolve().parents[1]
ASSET = embedded_dir()
asset_built = pytest.mark.skipif(not (ASSET / EMBEDDED_FILE).is_file(), reason="embedded model not built yet")


def tiny_prior(c_dim: int = 3, seed: int = 0) -> StyleGAN2Prior:
    torch.manual_seed(seed)
    generator = dict(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=256, channel_max=32))
    discriminator = dict(c_dim=c_dim, img_resolution=16, channel_base=256, channel_max=32, mbstd_group_size=2)
    return StyleGAN2Prior(generator, discriminator).eval()


@pytest.fixture
def one_thread():
    """Training on a shared 2-core machine: more threads only spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----- feature net ----------------------------------------------------------------------------------------
def test_feature_net_shapes_and_resizing():
    net = fnet.EmojiFeatureNet(9, (4, 8, 8, 16)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    logits, features = net.features_and_logits(x)
    assert logits.shape == (2, 9)
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4]
    assert [f.shape[1] for f in features] == [4, 8, 8, 16]
    # an x4 observation and a one-channel grey image are brought to the training size and to RGB
    small = torch.nn.functional.avg_pool2d(x, 4)
    assert [f.shape[-1] for f in net(small)] == [32, 16, 8, 4]
    gray = x.mean(1, keepdim=True)
    assert torch.allclose(net.classify(gray), net.classify(gray.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="expects images"):
        net(torch.zeros(2, 4, 32, 32))


def test_feature_net_distance_is_zero_for_identical_images_and_grows_with_damage():
    net = fnet.EmojiFeatureNet(9, (4, 8, 8, 16)).eval()
    distance = get_perceptual("feature-net", None, net=net)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.allclose(distance(x, x), torch.zeros(3), atol=1e-6)
    small, large = distance(x, x + 0.05 * torch.randn_like(x)), distance(x, x + 0.5 * torch.randn_like(x))
    assert (small > 0).all() and (large > small).all()


def test_degradation_augmentation_keeps_range_and_degrades():
    x = torch.rand(64, 3, 32, 32) * 2 - 1
    y = fnet.degrade_randomly(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    changed = (y - x).abs().flatten(1).amax(1) > 1e-3
    assert 0 < changed.float().mean() <= 1
    mask = fnet.random_hole_mask(200, 32, torch.Generator().manual_seed(1))
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and 0.0 < float(mask.mean()) < 1.0


def test_training_learns_classes_from_degraded_inputs(one_thread):
    """Two colour classes (red vs blue shapes) must stay separable under grey-free degradations."""
    rng = np.random.default_rng(0)
    images = np.full((96, 16, 16, 3), 255, np.uint8)
    labels = np.arange(96) % 2
    for i, k in enumerate(labels):
        y0, x0 = rng.integers(0, 8, 2)
        images[i, y0:y0 + 8, x0:x0 + 8] = (220, 30, 30) if k == 0 else (30, 30, 220)
    augment = fnet.AugmentConfig(p_gray=0.0)
    net, log = fnet.train_feature_net(images, labels, ("red", "blue"), fnet.TrainSettings(epochs=8, batch=32),
                                      channels=(4, 8), augment=augment, progress=False)
    assert len(log) == 8 and log[-1]["loss"] < log[0]["loss"]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    assert fnet.accuracy(net, x, labels)["top1"] > 0.9
    with pytest.raises(ValueError, match="matching"):
        fnet.train_feature_net(images[:3], labels[:2], ("a", "b"))


def test_feature_net_file_round_trip_without_pickle(tmp_path, monkeypatch):
    net = fnet.EmojiFeatureNet(3, (4, 8), 16, ("a", "b", "c")).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    path = fnet.save_feature_net(net, tmp_path / "fn.safetensors", {"accuracy": 0.5})
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used"))
    back = fnet.load_feature_net(path)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(back.classify(x), net.classify(x)) and back.classes == ("a", "b", "c")
    assert fnet.read_feature_net_info(path)["info"] == {"accuracy": 0.5}
    assert not any(p.requires_grad for p in back.parameters())
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(fnet.FeatureNetFormatError):
        fnet.load_feature_net(tmp_path / "junk.safetensors")


# ----- shipped centroid banks ------------------------------------------------------------------------------
def test_shipped_banks_replace_clustering_and_refuse_other_weights(tmp_path, monkeypatch):
    prior = tiny_prior()
    banks = {k: centroids.centroid_bank(prior, k, 4, 64, 0, cache=False) for k in range(prior.c_dim)}
    path = centroids.save_banks(banks, tmp_path / "b.safetensors", fingerprint=centroids.model_fingerprint(prior),
                                n_clusters=4, n_samples=64, seed=0)
    loaded = centroids.load_banks(path, centroids.model_fingerprint(prior))
    assert set(loaded) == {(k, 4, 64, 0) for k in range(prior.c_dim)}
    setattr(prior, centroids.SHIPPED_BANKS_ATTR, loaded)
    monkeypatch.setattr(centroids, "KMeans", lambda **kw: pytest.fail("k-means ran despite shipped banks"))
    assert torch.equal(centroids.centroid_bank(prior, 1, 4, 64, 0, cache_root=tmp_path), banks[1])
    with pytest.raises(centroids.BankFileError, match="other generator weights"):
        centroids.load_banks(path, centroids.model_fingerprint(tiny_prior(seed=1)))


# ----- build script on a tiny generator ---------------------------------------------------------------------
def _build_script():
    spec = importlib.util.spec_from_file_location("build_embedded", ROOT / "scripts" / "build_embedded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_writes_a_loadable_asset(tmp_path):
    prior = tiny_prior()
    ckpt = save_native(prior, tmp_path / "run" / "prior.safetensors", source={"iteration": 7})
    out, docs = tmp_path / "asset", tmp_path / "doc.md"
    docs.write_text("x\n<!-- build:banks -->\nold\n<!-- /build:banks -->\ny\n"
                    "<!-- build:samples -->\n<!-- /build:samples -->\n")  # a new, still empty block
    results = _build_script().main(["--ckpt", str(ckpt.parent), "--out", str(out), "--stages", "model,banks,samples",
                                    "--n-clusters", "3", "--n-samples", "30", "--docs", str(docs)])
    assert results["banks"]["n_clusters"] == 3 and results["model"]["source"]["trained"] == {"iteration": 7}
    text = docs.read_text()
    assert "old" not in text and "N=3 centroids of M=30" in text and text.startswith("x\n")
    assert "<!-- build:samples -->\n![samples_" in text and text.endswith("png)\n<!-- /build:samples -->\n")
    assert len(list((tmp_path / "doc").glob("samples_*.png"))) == prior.c_dim
    shipped = load_model(out / EMBEDDED_FILE)
    attach_embedded_extras(shipped, out)
    assert set(shipped.centroid_banks) == {(k, 3, 30, 0) for k in range(prior.c_dim)}
    x = shipped.sample(2, classes=0)
    assert torch.equal(x, prior.sample(2, classes=0))


# ----- the shipped asset ----------------------------------------------------------------------------------
@asset_built
def test_embedded_model_loads_without_pickle_and_generates(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle-based loading used for the embedded model")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    prior = load_model()  # no name: the embedded default
    assert prior.family == "stylegan2" and prior.resolution == 32 and prior.c_dim == 9
    images = prior.sample(4, seed=1)
    assert images.shape == (4, 3, 32, 32) and torch.isfinite(images).all()
    assert images.abs().max() < 3 and images.std() > 0.05
    # banks for every class, matching the paper's defaults, and the feature net on the prior
    assert {key[0] for key in prior.centroid_banks} == set(range(9))
    assert all(bank.shape == (10, prior.w_dim) for bank in prior.centroid_banks.values())
    assert prior.classifier(images).shape == (4, 9)
    distance = get_perceptual("feature-net", prior)
    assert float(distance(images, images).abs().max()) < 1e-6
    # the feature net is not part of the generator's state (fingerprints and re-saving see G and D only)
    assert not any(k.startswith("feature_net") for k in prior.state_dict())


@asset_built
def test_embedded_asset_is_small_and_feature_net_classifies_held_out_emoji():
    from ganprior.data.emoji import load_emoji_test

    total = sum(p.stat().st_size for p in ASSET.rglob("*") if p.is_file())
    assert total < 50e6
    assert {EMBEDDED_FILE, EMBEDDED_FEATURE_NET_FILE, EMBEDDED_BANKS_FILE} <= {p.name for p in ASSET.iterdir()}
    net = fnet.load_feature_net(ASSET / EMBEDDED_FEATURE_NET_FILE)
    test = load_emoji_test(32)
    pick = np.random.default_rng(0).choice(len(test.labels), 200, replace=False)
    x = torch.from_numpy(test.images[pick]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    acc = fnet.accuracy(net, x, test.labels[pick])
    assert acc["top1"] > 0.5, acc  # 9 classes: chance is 0.11 (0.37 always answering the largest class)
    gray = x.mul(torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert fnet.accuracy(net, gray, test.labels[pick])["top1"] > 0.4
