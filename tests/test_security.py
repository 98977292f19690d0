"""Hostile and broken checkpoints are refused with a clear error, and their payloads never run.

Each payload writes a marker file. Where cheap, a sanity check first shows the payload IS live (an
unsafe loader runs it), so the "marker absent" assertions cannot pass vacuously.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import shutil
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

from ganprior.loading import load_model
from ganprior.loading.native import FamilyNotAvailableError, ModelFormatError, family_module
from ganprior.loading.official import UnsupportedCheckpointError, load_official
from ganprior.loading.safe_pickle import (
    CorruptCheckpointError,
    PersistentNode,
    UnsafeCheckpointError,
    generator_node,
    load_official_pickle,
)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


class SystemCall:
    """Unpickles as ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# ----------------------------------------------------------------------------------------------
# (a) a plain malicious pickle
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["top", "inside_generator_state"])
def test_reduce_payload_is_refused(tmp_path, marker, where):
    payload = SystemCall(f"touch {marker}")
    if where == "top":
        obj = {"G_ema": payload}
    else:
        obj = {"G_ema": {"_modules": collections.OrderedDict(synthesis=payload)}}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))

    pickle.loads(path.read_bytes())  # sanity: the payload is live
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        load_official(path)
    with pytest.raises(UnsafeCheckpointError):
        load_model(str(path))
    assert not marker.exists()


def test_eval_global_is_refused(tmp_path, marker):
    # Hand-written opcodes: builtins.eval("open(marker, 'w')")
    source = f"open({str(marker)!r}, 'w')".encode()
    data = (b"\x80\x04" + b"\x8c\x08builtins\x8c\x04eval\x93" + b"\x8c" + bytes([len(source)]) + source
            + b"\x85R" + b".")
    path = tmp_path / "eval.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        load_official(path)
    assert not marker.exists()


def test_hostile_tensor_storage_blob_is_refused(tmp_path, marker):
    """A storage blob is an inner torch.save: it must go through weights_only too."""
    inner = io.BytesIO()
    torch.save(SystemCall(f"touch {marker}"), inner, _use_new_zipfile_serialization=False)

    class Blob:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (inner.getvalue(),))

    path = tmp_path / "blob.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Blob()}, protocol=4))
    with pytest.raises(UnsafeCheckpointError, match="storage blob"):
        load_official(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# (b) official persistence format with a payload in module_src
# ----------------------------------------------------------------------------------------------


class Persistent:
    """Pickles exactly like an official ``@persistent_class`` object: ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def fake_persistence_module(reconstruct):
    """``torch_utils.persistence`` exists only inside this block (for dumping, or for the unsafe sanity load)."""
    reconstruct.__module__, reconstruct.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = reconstruct
    package.persistence = module
    sys.modules.update({"torch_utils": package, "torch_utils.persistence": module})
    try:
        yield
    finally:
        del sys.modules["torch_utils"], sys.modules["torch_utils.persistence"]


def _unused(meta):  # placeholder the pickler names; never called in the dump
    raise AssertionError


def exec_like_official(meta):
    """What the official loader does with a persistent record: run its module source."""
    exec(compile(meta["module_src"], "<module_src>", "exec"), {})  # noqa: S102 - the sanity check's point
    return meta


def dump_persistent(obj, path: Path) -> None:
    with fake_persistence_module(_unused):
        path.write_bytes(pickle.dumps(obj, protocol=4))


def payload_source(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\nclass Generator: pass\n"


def persistent_meta(class_name: str, state: dict, source: str) -> dict:
    return {"type": "class", "version": 6, "module_src": source, "class_name": class_name, "state": state}


def test_module_src_payload_in_handmade_pickle_never_runs(tmp_path, marker):
    source = payload_source(marker)
    node = Persistent(persistent_meta("Generator", {"_modules": collections.OrderedDict(), "z_dim": 4}, source))
    path = tmp_path / "network-snapshot.pkl"
    dump_persistent({"G": node, "D": None, "G_ema": node}, path)

    with fake_persistence_module(exec_like_official):  # sanity: the official mechanism would run it
        pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()

    data = load_official_pickle(path)
    assert isinstance(data["G_ema"], PersistentNode) and data["G_ema"].module_src_length == len(source)
    with pytest.raises(UnsupportedCheckpointError, match="no mapping/synthesis"):
        load_official(path)
    assert not marker.exists()


def _with_payload(value, source: str):
    """Re-express a parsed official tree as official persistence records, each carrying ``source``."""
    if isinstance(value, PersistentNode):
        return Persistent(persistent_meta(value.class_name, _with_payload(value.state, source), source))
    if isinstance(value, collections.OrderedDict):
        return collections.OrderedDict((k, _with_payload(v, source)) for k, v in value.items())
    if isinstance(value, dict):
        return {k: _with_payload(v, source) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_with_payload(v, source) for v in value)
    return value


def test_module_src_payload_in_real_network_never_runs(official_dir, tmp_path, marker):
    try:
        family_module("stylegan2")
    except FamilyNotAvailableError as exc:
        pytest.skip(str(exc))
    clean = official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl"
    data = load_official_pickle(clean)
    evil = tmp_path / "network-snapshot.pkl"
    dump_persistent({k: _with_payload(data[k], payload_source(marker)) for k in ("G", "D", "G_ema")}, evil)
    assert generator_node(load_official_pickle(evil)).module_src_length > 0

    prior, reference = load_official(evil), load_official(clean)
    assert not marker.exists()
    sa, sb = prior.state_dict(), reference.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------------------------
# (c) truncated / corrupt / wrong-kind files
# ----------------------------------------------------------------------------------------------


def test_truncated_official_pickle(official_dir, tmp_path):
    blob = (official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl").read_bytes()
    path = tmp_path / "half.pkl"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupt"):
        load_official(path)


@pytest.mark.parametrize("kind", ["random", "empty", "zip", "text"])
def test_not_a_pickle(tmp_path, kind):
    path = tmp_path / "model.pkl"
    if kind == "random":
        path.write_bytes(b"\x13" + os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("data.pkl", b"hello")
    else:
        path.write_text("model weights")
    with pytest.raises(CorruptCheckpointError):
        load_official(path)
    with pytest.raises(CorruptCheckpointError):
        load_model(str(path))


def test_torch_save_state_dict_passed_as_pickle(tmp_path):
    path = tmp_path / "weights.pkl"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CorruptCheckpointError, match="torch.save zip archive"):
        load_official(path)


def test_corrupt_native_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(os.urandom(100))
    with pytest.raises(ModelFormatError):
        load_model(str(path))


# ----------------------------------------------------------------------------------------------
# BigGAN .pth path: weights_only must refuse
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_biggan_pth_is_refused(tmp_path, marker, zip_format):
    path = tmp_path / "G_ema_128.pth"
    torch.save({"linear.weight": SystemCall(f"touch {marker}")}, path, _use_new_zipfile_serialization=zip_format)

    torch.load(path, weights_only=False)  # sanity: the payload is live
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        load_official(path)
    with pytest.raises(UnsafeCheckpointError):
        load_model(str(tmp_path))  # the directory form finds the same file
    assert not marker.exists()


def test_malicious_discriminator_beside_clean_generator(official_dir, tmp_path, marker):
    shutil.copy(official_dir / "biggan_128" / "G_ema_128.pth", tmp_path / "G_ema_128.pth")
    torch.save({"x": SystemCall(f"touch {marker}")}, tmp_path / "D_128.pth")
    with pytest.raises(UnsafeCheckpointError):
        load_official(tmp_path / "G_ema_128.pth")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "empty", "random", "not_state_dict"])
def test_broken_biggan_pth(official_dir, tmp_path, kind):
    path = tmp_path / "G_ema_128.pth"
    blob = (official_dir / "biggan_128" / "G_ema_128.pth").read_bytes()
    if kind == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(b"\x13" + os.urandom(4096))
    else:
        torch.save([torch.ones(2)], path)
    with pytest.raises(CorruptCheckpointError):
        load_official(path)

