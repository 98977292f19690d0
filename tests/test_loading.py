"""Family detection, the native safetensors format, and load_model's conversion cache."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import ganprior.loading as loading
from ganprior.loading import native, official
from ganprior.loading.native import (
    FamilyNotAvailableError,
    ModelFormatError,
    family_module,
    load_native,
    read_native_metadata,
    save_native,
)
from ganprior.loading.official import detect_family, load_official
from ganprior.loading.safe_pickle import load_official_pickle
from ganprior.models.prior import GenerativePrior

STYLEGAN_CASES = {  # fixture case -> (family, variant)
    "sg2_uncond_32": ("stylegan2", "stylegan3-repo"),
    "sg2_cond_64_fp16": ("stylegan2", "stylegan3-repo"),
    "sg3_t_64": ("stylegan3", "stylegan3-t"),
    "sg3_r_64": ("stylegan3", "stylegan3-r"),
    "sgxl_16": ("stylegan_xl", "xl-stem"),
    "sgxl_32": ("stylegan_xl", "xl-superres"),
}
ALL_CASES = [*STYLEGAN_CASES, "biggan_128"]


def require_family(family: str) -> None:
    try:
        family_module(family)
    except FamilyNotAvailableError as exc:
        pytest.skip(f"family {family!r} not implemented yet: {exc}")


def case_path(official_dir: Path, case: str) -> Path:
    return official_dir / case if case == "biggan_128" else official_dir / case / "network-snapshot.stripped.pkl"


def case_family(case: str) -> str:
    return "biggan" if case == "biggan_128" else STYLEGAN_CASES[case][0]


# ----------------------------------------------------------------------------------------------
# A toy family, so the format itself is tested independently of the real networks
# ----------------------------------------------------------------------------------------------


class ToyPrior(GenerativePrior):
    family = "toy"

    def __init__(self, width: int = 4, tied: bool = False) -> None:
        super().__init__()
        self.width, self.tied = width, tied
        self.G = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width))
        self.G.register_buffer("step", torch.tensor(7, dtype=torch.int64))
        if tied:  # a second name for the same tensor, as weight tying produces
            self.G.register_buffer("alias", self.G[0].weight.data)

    resolution = property(lambda self: 1)
    z_dim = w_dim = property(lambda self: self.width)
    c_dim = property(lambda self: 0)
    num_ws = property(lambda self: 1)

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        return z[:, None]

    def synthesis(self, ws, c=None, noise_mode="const"):
        return self.G(ws[:, 0])

    def w_avg(self, c=None):
        return torch.zeros(1, self.width)

    def blocks(self):
        return list(self.G)

    def config(self) -> dict:
        return {"family": "toy", "width": self.width, "tied": self.tied}


def from_config(config: dict, state_dict: dict[str, torch.Tensor]) -> ToyPrior:
    prior = ToyPrior(config["width"], config["tied"])
    prior.load_state_dict(state_dict, strict=True)
    return prior


@pytest.fixture
def toy_family(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(native.FAMILY_MODULES, "toy", __name__)


def randomized_toy(**kwargs) -> ToyPrior:
    torch.manual_seed(0)
    prior = ToyPrior(**kwargs)
    with torch.no_grad():
        for t in prior.state_dict().values():
            if t.is_floating_point():
                t.normal_()
    return prior.eval()


def assert_identical(a: GenerativePrior, b: GenerativePrior) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    assert a.config() == b.config()


# ----------------------------------------------------------------------------------------------
# Native format
# ----------------------------------------------------------------------------------------------


def test_native_roundtrip_is_bit_identical_and_pickle_free(tmp_path, toy_family, monkeypatch):
    prior = randomized_toy(tied=True)
    path = save_native(prior, tmp_path / "toy.safetensors")

    def no_pickle(*args, **kwargs):
        raise AssertionError("load_native must not unpickle anything")

    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = load_native(path)
    assert isinstance(loaded, ToyPrior) and not loaded.training
    assert_identical(prior, loaded)
    assert read_native_metadata(path)["config"] == {"family": "toy", "width": 4, "tied": True}


def test_native_save_is_atomic(tmp_path, toy_family, monkeypatch):
    path = save_native(randomized_toy(), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        Path(args[1]).write_bytes(b"half-written")
        raise OSError("disk full")

    monkeypatch.setattr(native, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_native(ToyPrior(width=8), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_native_rejects_foreign_and_broken_files(tmp_path, toy_family):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(plain))
    with pytest.raises(ModelFormatError, match="not a ganprior model"):
        load_native(plain)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(ModelFormatError, match="not a safetensors file"):
        load_native(garbage)
    good = save_native(randomized_toy(), tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFormatError):
        load_native(cut)
    bad_config = tmp_path / "bad_config.safetensors"
    save_file({"w": torch.ones(2)}, str(bad_config), metadata={"format": "ganprior-native", "format_version": "1",
                                                               "config": "{not json"})
    with pytest.raises(ModelFormatError, match="malformed config"):
        load_native(bad_config)


def test_native_unknown_family_and_mismatched_tensors(tmp_path, toy_family):
    path = tmp_path / "alien.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"format": "ganprior-native", "format_version": "1",
                                                         "config": json.dumps({"family": "vqgan"})})
    with pytest.raises(FamilyNotAvailableError, match="unknown model family 'vqgan'"):
        load_native(path)
    save_file({"w": torch.ones(2)}, str(path), metadata={"format": "ganprior-native", "format_version": "1",
                                                         "config": json.dumps({"family": "toy", "width": 4,
                                                                               "tied": False})})
    with pytest.raises(ModelFormatError, match="do not fit the toy model"):
        load_native(path)


# ----------------------------------------------------------------------------------------------
# Official checkpoints
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(STYLEGAN_CASES))
def test_detect_family(official_dir, case):
    kind = detect_family(load_official_pickle(case_path(official_dir, case)))
    assert (kind.family, kind.variant) == STYLEGAN_CASES[case]


def test_biggan_pair_naming(official_dir, tmp_path):
    g, d = official.biggan_pair(official_dir / "biggan_128")
    assert (g.name, d.name) == ("G_ema_128.pth", "D_128.pth")
    assert official.biggan_pair(official_dir / "biggan_128" / "G_ema_128.pth") == (g, d)
    lone = tmp_path / "G_ema_256.pth"
    shutil.copy(g, lone)
    assert official.biggan_pair(lone) == (lone, None)
    wrong = tmp_path / "generator.pth"
    shutil.copy(g, wrong)
    with pytest.raises(official.UnsupportedCheckpointError, match="G_ema_<suffix>.pth"):
        official.biggan_pair(wrong)


@pytest.mark.parametrize("case", ALL_CASES)
def test_native_roundtrip_every_fixture_family(official_dir, tmp_path, case):
    require_family(case_family(case))
    prior = load_official(case_path(official_dir, case))
    assert prior.family == case_family(case) and not prior.training
    path = save_native(prior, tmp_path / f"{case}.safetensors")
    loaded = load_native(path)
    assert type(loaded) is type(prior)
    assert_identical(prior, loaded)
    torch.manual_seed(0)
    z = torch.randn(1, prior.z_dim)
    c = prior.class_matrix(1 if prior.c_dim else None, 1)
    with torch.no_grad():
        assert torch.equal(prior(z, c), loaded(z, c))


# ----------------------------------------------------------------------------------------------
# load_model and its conversion cache
# ----------------------------------------------------------------------------------------------


def test_load_model_caches_native_conversion(tmp_path, toy_family, monkeypatch):
    checkpoint = tmp_path / "net.pkl"
    checkpoint.write_bytes(b"stand-in for an official pickle")
    calls = []

    def fake_official(path, device="cpu"):
        calls.append(Path(path))
        return randomized_toy()

    monkeypatch.setattr(loading, "load_official", fake_official)
    first = loading.load_model(str(checkpoint), native_cache=True)
    cached = loading.converted_path(checkpoint)
    assert cached == tmp_path / "net.native.safetensors" and cached.is_file()
    second = loading.load_model(str(checkpoint), native_cache=True)
    assert calls == [checkpoint]  # second load came from the native file
    assert_identical(first, second)

    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # checkpoint replaced -> reconvert
    loading.load_model(str(checkpoint), native_cache=True)
    assert len(calls) == 2


def test_load_model_does_not_write_beside_user_files_by_default(tmp_path, toy_family, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "net.pkl"
    checkpoint.write_bytes(b"x")
    monkeypatch.setattr(loading, "load_official", lambda path, device="cpu": randomized_toy())
    loading.load_model(str(checkpoint))
    assert not loading.converted_path(checkpoint).exists()


def test_load_model_reads_native_files_directly(tmp_path, toy_family):
    path = save_native(randomized_toy(width=3), tmp_path / "toy.safetensors")
    assert loading.load_model(str(path)).width == 3


def test_load_model_converts_downloaded_checkpoint_once(official_dir, tmp_path, monkeypatch):
    """A checkpoint inside the download cache is converted on first load; later loads read no pickle."""
    require_family("stylegan2")
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path))
    checkpoint = tmp_path / "some-model" / "net.pkl"
    checkpoint.parent.mkdir()
    shutil.copy(official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl", checkpoint)
    first = loading.load_model(str(checkpoint))
    assert (tmp_path / "some-model" / "net.native.safetensors").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("second load must come from the native conversion")

    monkeypatch.setattr(loading, "load_official", refuse)
    second = loading.load_model(str(checkpoint))
    assert_identical(first, second)
