"""Model registry: name resolution, cache layout, verified downloads, offline and manual-download errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from ganprior.loading import registry
from ganprior.loading.registry import (
    ChecksumMismatchError,
    ModelNotAvailableError,
    ModelSpec,
    RemoteFile,
    UnknownModelError,
    resolve,
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("GANPRIOR_CACHE", str(root))
    monkeypatch.delenv("GANPRIOR_OFFLINE", raising=False)
    return root


@pytest.fixture
def no_download(monkeypatch):
    import pooch

    def refuse(*args, **kwargs):
        raise AssertionError("no download expected")

    monkeypatch.setattr(pooch, "retrieve", refuse)


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server (stands in for the model host); yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def register(monkeypatch, url: str, sha256: str | None, name: str = "test-model") -> ModelSpec:
    spec = ModelSpec(name, "stylegan2", 32, 0, "test", (RemoteFile("net.pkl", url, sha256),), "https://example.org")
    monkeypatch.setitem(registry.REGISTRY, name, spec)
    return spec


def test_registry_contents_are_consistent():
    specs = registry.REGISTRY.values()
    for needed in ("stylegan_xl-imagenet16", "stylegan_xl-imagenet1024", "stylegan2-ada-cifar10",
                   "stylegan3-t-ffhq-1024x1024", "stylegan3-r-afhqv2-512x512", "biggan-dgp-128", "emoji32"):
        assert needed in registry.REGISTRY
    assert registry.REGISTRY["stylegan2-ada-cifar10"].classes == 10
    for spec in specs:
        assert spec.family in ("stylegan2", "stylegan3", "stylegan_xl", "biggan")
        for f in spec.files:
            assert f.url is None or f.url.endswith("/" + f.filename)
            assert f.sha256 is None or len(f.sha256) == 64
        assert spec.verified == all(f.sha256 for f in spec.files)


def test_unknown_name_lists_close_matches(cache):
    with pytest.raises(UnknownModelError, match="did you mean: .*stylegan_xl-imagenet256"):
        resolve("stylegan_xl-imagenet265")
    with pytest.raises(UnknownModelError, match="ganprior models"):
        resolve("zzzz")


def test_missing_path_is_a_file_error(cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        resolve(str(tmp_path / "nope.pkl"))


def test_existing_path_and_explicit_weights(cache, tmp_path, no_download):
    f = tmp_path / "mine.pkl"
    f.write_bytes(b"x")
    assert resolve(str(f)) == f
    assert resolve("biggan-dgp-128", weights=f) == f
    with pytest.raises(UnknownModelError):
        resolve("not-a-model", weights=f)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        resolve("biggan-dgp-128", weights=tmp_path / "missing.pth")


def test_cached_file_is_used_without_download(cache, no_download):
    spec = registry.REGISTRY["stylegan2-ada-afhqcat"]
    target = cache / "stylegan2-ada-afhqcat" / "afhqcat.pkl"
    assert registry.local_files(spec) == [target]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"cached")
    assert resolve("stylegan2-ada-afhqcat") == target


def test_offline_error_names_exact_path_and_url(cache, monkeypatch, no_download):
    monkeypatch.setenv("GANPRIOR_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as err:
        resolve("stylegan_xl-imagenet64")
    message = str(err.value)
    assert str(cache / "stylegan_xl-imagenet64" / "imagenet64.pkl") in message
    assert "https://s3.eu-central-1.amazonaws.com/avg-projects/stylegan_xl/models/imagenet64.pkl" in message
    assert "offline" in message


def test_manual_download_error_names_both_biggan_files(cache, no_download):
    with pytest.raises(ModelNotAvailableError) as err:
        resolve("biggan-dgp-256")
    message = str(err.value)
    for name in ("G_ema_256.pth", "D_256.pth"):
        assert str(cache / "biggan-dgp-256" / name) in message
    assert "deep-generative-prior" in message


def test_embedded_model_missing_is_a_clear_error(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "embedded_dir", lambda name="emoji32": tmp_path / "assets" / name)
    with pytest.raises(ModelNotAvailableError, match="embedded default model 'emoji32' is not built yet"):
        resolve(None)
    (tmp_path / "assets" / "emoji32").mkdir(parents=True)
    (tmp_path / "assets" / "emoji32" / "model.safetensors").write_bytes(b"x")
    assert resolve(None) == tmp_path / "assets" / "emoji32" / "model.safetensors"


def test_download_verifies_hash_into_cache(cache, monkeypatch, http_root):
    www, base = http_root
    payload = b"pretend network pickle" * 100
    (www / "net.pkl").write_bytes(payload)
    register(monkeypatch, f"{base}/net.pkl", hashlib.sha256(payload).hexdigest())
    path = resolve("test-model")
    assert path == cache / "test-model" / "net.pkl" and path.read_bytes() == payload


def test_download_with_wrong_hash_is_refused_and_discarded(cache, monkeypatch, http_root):
    www, base = http_root
    (www / "net.pkl").write_bytes(b"tampered")
    register(monkeypatch, f"{base}/net.pkl", "0" * 64)
    with pytest.raises(ChecksumMismatchError, match="did not match the published SHA-256"):
        resolve("test-model")
    assert not (cache / "test-model" / "net.pkl").exists()


def test_unreachable_host_is_model_not_available(cache, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/net.pkl"
    register(monkeypatch, url, None)
    with pytest.raises(ModelNotAvailableError) as err:
        resolve("test-model")
    assert str(cache / "test-model" / "net.pkl") in str(err.value) and url in str(err.value)
