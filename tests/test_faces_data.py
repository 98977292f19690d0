"""The cartoon-faces dataset (issue 23): shipped test split, parameter -> label mapping, node renderer.

Everything but the renderer test runs without node: the held-out split ships as a package asset.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from ganprior.data.cartoon_faces import (
    JS_DIR,
    STYLES,
    TEST_SEED_OFFSET,
    FacesDataError,
    check_renderer,
    labels_from_params,
    load_faces_test,
    render_records,
)
from ganprior.data.emoji import render_on_white
from ganprior.training.checkpoint import (
    compact_checkpoint,
    expand_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

VOCAB = {
    "avataaars": {"eyes": ["closed", "happy"], "skinColor": ["614335", "ffdbb4"], "accessories": ["none", "round"]},
    "facesjs": {"gender": ["male", "female"], "eye.id": ["eye1", "eye2", "eye3"]},
}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def test32():
    return load_faces_test(32)


def test_shipped_split_is_held_out_balanced_and_labelled(test32):
    test64 = load_faces_test(64)
    n = len(test32)
    assert n >= 200 and test32.images.shape == (n, 32, 32, 3) and test64.images.shape == (n, 64, 64, 3)
    assert np.bincount(test32.labels, minlength=2).tolist() == [n // 2, n // 2]
    assert (test32.seeds >= TEST_SEED_OFFSET).all()  # training seeds are 0 .. train_per_style - 1
    assert len(set(zip(test32.labels.tolist(), test32.seeds.tolist()))) == n
    assert test32.attrs.shape == (n, len(test32.attr_names))
    for j, name in enumerate(test32.attr_names):
        style, attr = name.split(".", 1)
        own = test32.labels == STYLES.index(style)
        assert (test32.attrs[~own, j] == -1).all(), name
        assert ((test32.attrs[own, j] >= 0) & (test32.attrs[own, j] < len(test32.vocab[style][attr]))).all(), name
    # white background in the corners; the same faces at both resolutions
    assert test32.images[:, 0, 0].min() >= 240
    small = torch.nn.functional.avg_pool2d(torch.from_numpy(test64.images).permute(0, 3, 1, 2).float(), 2)
    assert (small - torch.from_numpy(test32.images).permute(0, 3, 1, 2).float()).abs().mean() < 6


def test_every_shipped_label_follows_from_its_stored_parameters(test32):
    for style_id, params, attrs in zip(test32.labels, test32.params, test32.attrs):
        assert np.array_equal(labels_from_params(STYLES[style_id], json.loads(params), test32.vocab), attrs)


def test_parameter_to_label_mapping_on_a_hand_written_sample():
    a = labels_from_params("avataaars", {"eyes": "happy", "skinColor": "614335", "accessories": "none"}, VOCAB)
    f = labels_from_params("facesjs", {"gender": "female", "race": "white", "face": {"eye": {"id": "eye3"}}}, VOCAB)
    assert a.tolist() == [1, 0, 0, -1, -1] and f.tolist() == [-1, -1, -1, 1, 2]
    with pytest.raises(FacesDataError, match="eyes='wink' is not in the renderer's vocabulary"):
        labels_from_params("avataaars", {"eyes": "wink", "skinColor": "614335", "accessories": "none"}, VOCAB)


def test_compact_checkpoint_resumes_like_the_full_one():
    g = torch.Generator().manual_seed(0)
    net = {"w": torch.randn(8, 8, generator=g), "n": torch.tensor(3)}
    opt = {"state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.randn(8, generator=g),
                         "exp_avg_sq": torch.rand(8, generator=g) * 1e-9}},
           "param_groups": [{"lr": 0.0025, "betas": (0.0, 0.99), "params": [0]}]}
    state = {"iteration": 12, "G": net, "D": net, "G_ema": net, "opt_G": opt, "opt_D": opt}
    back = expand_checkpoint(compact_checkpoint(state))
    assert back["iteration"] == 12 and "compact" not in back
    assert torch.allclose(back["G"]["w"], net["w"], rtol=1e-3) and back["G"]["w"].dtype == torch.float32
    assert back["G"]["n"].dtype == torch.int64
    moments = back["opt_D"]["state"][0]
    assert torch.allclose(moments["exp_avg_sq"], opt["state"][0]["exp_avg_sq"], rtol=1e-2)
    assert not moments["exp_avg"].any() and moments["step"] == 7
    with pytest.raises(Exception, match="beta1 != 0"):
        compact_checkpoint({**state, "opt_G": {**opt, "param_groups": [{"betas": (0.9, 0.99)}]}})


def test_compact_checkpoint_file_is_expanded_on_load(tmp_path):
    net = {"w": torch.ones(4)}
    opt = {"state": {}, "param_groups": [{"betas": (0.0, 0.99)}]}
    save_checkpoint(compact_checkpoint({"iteration": 3, "G": net, "D": net, "G_ema": net, "opt_G": opt,
                                        "opt_D": opt}), tmp_path / "c.ckpt")
    assert load_checkpoint(tmp_path / "c.ckpt")["G"]["w"].dtype == torch.float32


def test_training_resumes_from_a_compact_state_file(tmp_path):
    from ganprior.training.loop import TrainConfig, train

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(8) % 2
    data = tmp_path / "faces_8.npz"
    np.savez(data, images=images, labels=labels, vendors=labels, split=np.zeros(8, np.uint8),
             classes=np.array(STYLES), vendor_names=np.array(STYLES))
    tiny = TrainConfig(batch=4, z_dim=8, w_dim=8, mapping_layers=1, g_channel_base=32, g_channel_max=16,
                       d_channel_base=32, d_channel_max=16, d_mapping_layers=1, r1_interval=2, augment="")
    run = {"resume": True, "log_every": 1, "sample_every": 100, "snapshot_every": 0}
    full = train(data, tmp_path / "full", tiny, max_iters=1, **run)
    save_checkpoint(compact_checkpoint(full.state_dict()), tmp_path / "compact" / "ckpt.pt")
    assert (tmp_path / "compact" / "ckpt.pt").stat().st_size < (tmp_path / "full" / "ckpt.pt").stat().st_size * 0.7
    resumed = train(data, tmp_path / "compact", tiny, max_iters=2, **run)
    assert resumed.iteration == 2
    after = load_checkpoint(tmp_path / "compact" / "ckpt.pt")["G"]
    for name, weight in full.G.named_parameters():  # one more small Adam step from the rounded weights
        assert torch.allclose(weight, after[name], rtol=2e-3, atol=0.02), name


def test_faces_prior_is_registered_and_loads():
    from ganprior.loading.native import load_native
    from ganprior.loading.registry import get_spec, resolve

    spec = get_spec("faces32")
    assert spec.embedded and spec.classes == len(STYLES) and spec.resolution == 32
    prior = load_native(resolve("faces32"))
    with torch.no_grad():
        img = prior.G(torch.randn(2, prior.G.z_dim), torch.eye(2), noise_mode="const")
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()


_NO_RENDERER = shutil.which("node") is None or not (JS_DIR / "node_modules").is_dir()


@pytest.mark.skipif(_NO_RENDERER, reason="node or src/ganprior/data/faces_js/node_modules absent (npm ci there)")
def test_renderer_reproduces_the_shipped_images_and_parameters(test32):
    check_renderer(install=False)
    for style_id, style in enumerate(STYLES):
        i = int(np.flatnonzero(test32.labels == style_id)[0])
        (record,) = render_records(style, int(test32.seeds[i]), 1)
        assert json.dumps(record["params"], sort_keys=True, separators=(",", ":")) == test32.params[i]
        diff = render_on_white(record["png"], 32).astype(int) - test32.images[i]
        assert np.abs(diff).max() <= 2, style


def test_attributes_not_drawn_are_neither_learnt_nor_scored(test32):
    from ganprior.data.cartoon_faces_attributes import visible_attrs

    shown = visible_attrs(test32.attrs, test32.attr_names, test32.vocab)
    names, vocab = test32.attr_names, test32.vocab["avataaars"]
    hat = np.isin(test32.attrs[:, names.index("avataaars.top")],
                  [vocab["top"].index(t) for t in ("hat", "turban", "winterHat1")])
    plain = test32.attrs[:, names.index("avataaars.top")] == vocab["top"].index("bob")
    col = names.index("avataaars.hatColor")
    assert hat.any() and plain.any() and (shown[hat, col] >= 0).all() and (shown[plain, col] == -1).all()
    no_beard = test32.attrs[:, names.index("avataaars.facialHair")] == 0  # "none"
    assert (shown[no_beard, names.index("avataaars.facialHairColor")] == -1).all()
    eyes = names.index("avataaars.eyes")
    assert np.array_equal(shown[:, eyes], test32.attrs[:, eyes])


def test_shipped_attribute_classifier_reads_held_out_faces(test32):
    from ganprior.data.cartoon_faces import packaged_asset_path
    from ganprior.data.cartoon_faces_attributes import (
        attribute_accuracy,
        histogram_distance,
        load_attribute_net,
        predict,
        visible_attrs,
    )

    net = load_attribute_net(packaged_asset_path().with_name("attributes.safetensors"))
    style, attrs = predict(net, test32.images, test32.labels)
    assert (style == test32.labels).mean() > 0.98
    acc = attribute_accuracy(attrs, visible_attrs(test32.attrs, test32.attr_names, test32.vocab), test32.attr_names)
    assert acc["avataaars.skinColor"] > 0.85 and acc["facesjs.body.color"] > 0.85  # colorization's labels
    assert acc["avataaars.eyes"] > 0.3 and acc["avataaars.mouth"] > 0.3  # chance: 1/12
    same = histogram_distance(attrs, attrs, net.attr_names, net.head_sizes)
    flipped = histogram_distance(attrs, np.where(attrs >= 0, 0, -1), net.attr_names, net.head_sizes)
    assert max(same.values()) == 0 and np.mean(list(flipped.values())) > 0.3
