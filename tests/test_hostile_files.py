"""Hostile and broken model files: refused fast, with bounded memory, one error class each, no traceback.

The corpus (``tests/hostile_corpus.py``) runs in one fresh subprocess that forks a child per file under
``RLIMIT_AS`` and a timeout, so a regression shows up as a failed row here, not as a crashed test run.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganprior.cli.main import cli
from ganprior.loading import errors, integrity, load_model, registry, save_native
from ganprior.loading.native_check import DIGEST_KEY, read_header
from ganprior.loading.pickle_scan import iter_opcodes, scan_official_pickle
import pickletools

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def corpus_rows(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("corpus") / "rows.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "hostile_corpus.py"), "--json", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_corpus_covers_the_issue(corpus_rows):
    names = {r["file"] for r in corpus_rows}
    for needed in ("deep_tuple_dict_key.pkl", "deep_tuple_frozenset.pkl", "deep_tuple_key.pth", "memo_bomb.pkl",
                   "zero_stride_view.pkl", "safetensors_29GB.safetensors", "biggan_aliased_views.pth",
                   "zip_bomb_blob.pkl", "zip_bomb.pth", "hash_collision_keys.pkl", "named_pipe model.pkl",
                   "tensor_larger_than_storage.pkl", "flipped_weight_bytes.safetensors", "numpy_object_array.pkl",
                   "build_rewrites_tensor.pkl", "nan_lr_multiplier.safetensors", "list_activation.safetensors",
                   "cwd_file_named_like_registry_model", "cache_manifest_mismatch",
                   # issue 27
                   "ndarray_object_bomb.pkl", "reconstruct_object_bomb.pkl", "newobj_ndarray_bomb.pkl",
                   "many_tensors.safetensors", "module_cycle.pkl", "parameters_list.pkl",
                   # issue 29: twins of the XL snapshot records now accepted
                   "dill_import_os.pkl", "dill_numpy_other_function.pkl", "dill_scalar_object_dtype.pkl",
                   "skip_record_not_under_D.pkl", "skip_record_payload.pkl", "skip_record_leaks_to_G_ema.pkl",
                   "skip_record_edits_G.pkl", "persistent_D_stays_strict.pkl", "skip_record_rewrites_tensor.pkl"):
        assert needed in names


def test_every_file_is_refused_quickly_with_bounded_memory(corpus_rows):
    bad = [r for r in corpus_rows if not (r["refused"] and r["time_s"] < 5 and r["peak_mb"] < 500)]
    assert not bad, [(r["file"], r["expected"], r["observed"], r["time_s"], r["peak_mb"]) for r in bad]
    assert not [r["file"] for r in corpus_rows if r["payload_ran"]]


def test_messages_are_short_and_never_advise_unsafe_loading(corpus_rows):
    for r in corpus_rows:
        assert "weights_only=False" not in r["message"] + r["cli_message"], r["file"]
        if r["expected"] != "ModelNotAvailableError":  # that one lists the files to download, by design
            assert r["message_len"] <= errors.MAX_MESSAGE, (r["file"], r["message_len"])


def test_cli_gives_one_line_and_no_traceback(corpus_rows):
    for r in corpus_rows:
        assert r["cli"] == "exit 1", (r["file"], r["cli"], r["cli_message"])
        assert "Traceback" not in r["cli_message"] and r["cli_message"].startswith("Error:"), r["file"]


# ---------------------------------------------------------------------------------------------- the scan


def test_opcode_walk_matches_pickletools(official_dir):
    raw = (official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl").read_bytes()
    ours = [(name, pos) for name, _, pos in iter_opcodes(raw)]
    theirs = [(op.name, pos) for op, _, pos in pickletools.genops(raw)]
    assert ours == theirs


def test_real_fixtures_pass_the_scan(official_dir):
    for path in sorted(official_dir.glob("*/network-snapshot.stripped.pkl")):
        scan = scan_official_pickle(path.read_bytes(), str(path))
        assert scan.tensor_bytes == scan.storage_bytes > 0


P4 = b"\x80\x04"
_DTYPE = b"\x8c\x05numpy\x8c\x05dtype\x93"


@pytest.mark.parametrize("body, match", [
    # _reconstruct of a numeric dtype, but more elements than the file has bytes
    (b"\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93J\x00\x00\x00\x10"
     b"\x85C\x01f\x87R", "needs more bytes than the file"),
    # dtype('V8') given fields by BUILD (a structured dtype can hold objects)
    (_DTYPE + b"\x8c\x02V8\x89\x88\x87R", "not a plain numeric type"),
    (_DTYPE + b"\x8c\x02f4\x89\x88\x87R(K\x03\x8c\x01|N\x8c\x01a\x85}K\x08K\x01K\x10tb", "not a plain numeric type"),
    (_DTYPE + b"\x8c\x06object\x89\x88\x87R", "not a plain numeric type"),
])
def test_numpy_records_are_checked_before_anything_is_built(body, match):
    with pytest.raises(errors.CheckpointError, match=match):
        scan_official_pickle(P4 + body + b".", "x.pkl")


def test_numeric_numpy_records_still_pass():
    import numpy as np

    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.float64(0.5), np.dtype("int64"), np.int32(7)):
        scan_official_pickle(pickle.dumps({"a": value}, protocol=4), "x.pkl")


def test_limits_say_how_to_raise_them_and_can_be_raised(tmp_path, monkeypatch):
    import struct

    header = json.dumps({k: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
                         for i, k in enumerate("abcd")}).encode()
    path = tmp_path / "four.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    monkeypatch.setenv("GANPRIOR_SCAN_LIMITS", "max_tensors=1")
    with pytest.raises(errors.CheckpointLimitError, match="GANPRIOR_SCAN_LIMITS=max_tensors=<n>"):
        load_model(str(path))
    monkeypatch.setenv("GANPRIOR_SCAN_LIMITS", "max_tensors=4")
    with pytest.raises(errors.CorruptCheckpointError, match="not a ganprior model"):  # past the limit
        load_model(str(path))


def test_module_tree_walk_is_bounded():
    from ganprior.loading.safe_pickle import PersistentNode, check_module_tree

    def node(children):
        return PersistentNode("M", {"_modules": dict(children)}, "", 0)

    chain = node({})
    for _ in range(300):  # deeper than any network, without a cycle
        chain = node({"c": chain})
    with pytest.raises(errors.CheckpointLimitError, match="nest deeper"):
        check_module_tree(chain, "x.pkl")
    shared = node({})
    for _ in range(40):  # each level holds the next one twice: 2**40 paths from a few hundred bytes
        shared = node({"a": shared, "b": shared})
    with pytest.raises(errors.CheckpointLimitError, match="max_modules"):
        check_module_tree(shared, "x.pkl")


def test_error_classes_share_one_base_and_cut_long_messages():
    for cls in (errors.UnsafeCheckpointError, errors.CorruptCheckpointError, errors.CheckpointLimitError,
                errors.IntegrityError, errors.UnsafePathError, errors.UnsupportedCheckpointError):
        assert issubclass(cls, errors.CheckpointError)
    assert len(str(errors.CorruptCheckpointError("x" * 10_000))) == errors.MAX_MESSAGE
    assert issubclass(errors.UnsafeCheckpointError, pickle.UnpicklingError)


# ---------------------------------------------------------------------------------------------- paths


def test_registry_name_beats_a_file_of_that_name_in_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "emoji32").write_bytes(b"\x80\x04N.")
    prior = load_model("emoji32")
    assert prior.resolution == 32
    with pytest.raises(errors.CorruptCheckpointError):
        load_model("./emoji32")  # the file, given as a path
    (tmp_path / "mymodel").write_bytes(b"\x80\x04N.")
    with pytest.raises(registry.UnknownModelError, match=r"\./mymodel"):
        load_model("mymodel")


@pytest.fixture
def sg2_fixture(official_dir) -> Path:
    return official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl"


def test_symlink_into_the_cache_keeps_writes_inside(tmp_path, monkeypatch, sg2_fixture):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GANPRIOR_CACHE", str(cache))
    real = cache / "some-model" / "net.pkl"
    real.parent.mkdir(parents=True)
    shutil.copy(sg2_fixture, real)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "net.pkl").symlink_to(real)
    load_model(str(outside / "net.pkl"))
    assert not list(outside.glob("*.safetensors"))  # nothing written beside the link
    converted = real.with_name("net.native.safetensors")
    assert converted.is_file()
    assert integrity.read_manifest(cache)["some-model/net.native.safetensors"]["sha256"] == \
        integrity.sha256_file(converted)


def test_symlink_out_of_the_cache_is_not_converted_beside_its_target(tmp_path, monkeypatch, sg2_fixture):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GANPRIOR_CACHE", str(cache))
    outside = tmp_path / "user"
    outside.mkdir()
    shutil.copy(sg2_fixture, outside / "net.pkl")
    link = cache / "m" / "net.pkl"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside / "net.pkl")
    load_model(str(link))
    assert not list(outside.glob("*.safetensors")) and not list(link.parent.glob("*.safetensors"))


# ---------------------------------------------------------------------------------------------- integrity


def test_native_digest_written_checked_and_optional(tmp_path):
    prior = load_model("emoji32")
    path = save_native(prior, tmp_path / "m.safetensors")
    with open(path, "rb") as fh:
        _, meta = read_header(fh, path.stat().st_size, str(path))
    assert DIGEST_KEY in meta
    reloaded = load_model(str(path))
    assert all(torch.equal(a, b) for a, b in zip(prior.state_dict().values(), reloaded.state_dict().values()))
    # a file written before digests existed (same tensors, no digest) still loads
    from safetensors.torch import load_file, save_file

    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata={k: v for k, v in meta.items() if k != DIGEST_KEY})
    load_model(str(old))


def test_models_verify_rehashes_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GANPRIOR_CACHE", str(cache))
    f = cache / "x" / "a.pkl"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"weights")
    integrity.record(f, cache, "test")
    ok = CliRunner().invoke(cli, ["models", "--verify", "--json"])
    assert ok.exit_code == 0, ok.output
    assert {r["status"] for r in json.loads(ok.output)["files"]} <= {"ok", "ok (no digest)"}
    f.write_bytes(b"weightz")
    bad = CliRunner().invoke(cli, ["models", "--verify"])
    assert bad.exit_code == 1 and "changed" in bad.output


def test_pinned_registry_hash_is_checked_on_load(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GANPRIOR_CACHE", str(cache))
    spec = registry.REGISTRY["stylegan2-ada-cifar10"]
    target = registry.local_files(spec)[0]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the published file")
    pinned = registry.RemoteFile(spec.files[0].filename, spec.files[0].url, sha256="0" * 64)
    monkeypatch.setitem(registry.REGISTRY, spec.name, registry.ModelSpec(
        spec.name, spec.family, spec.resolution, spec.classes, spec.dataset, (pinned,), spec.page))
    with pytest.raises(errors.IntegrityError, match="published SHA-256"):
        load_model(spec.name)


# ---------------------------------------------------------------------------------------------- real formats


def test_legacy_format_pth_pair_still_loads(official_dir, tmp_path):
    """DGP's released weights predate torch's zip format; the legacy layout must pass the scan unchanged."""
    for name in ("G_ema_128.pth", "D_128.pth"):
        state = torch.load(official_dir / "biggan_128" / name, map_location="cpu", weights_only=True)
        torch.save(state, tmp_path / name, _use_new_zipfile_serialization=False)
    legacy, zipped = load_model(str(tmp_path / "G_ema_128.pth")), load_model(str(official_dir / "biggan_128"))
    a, b = legacy.state_dict(), zipped.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_protocol_3_pickles_still_load(sg2_fixture, tmp_path):
    """ADA-era pickles use protocol 3 (GLOBAL, BINPUT, no frames); the scan accepts what it writes."""
    from test_security import _with_payload, fake_persistence_module, _unused

    from ganprior.loading.safe_pickle import load_official_pickle

    data = load_official_pickle(sg2_fixture)
    path = tmp_path / "old.pkl"
    with fake_persistence_module(_unused):
        path.write_bytes(pickle.dumps({k: _with_payload(data[k], "") for k in ("G", "D", "G_ema")},
                                      protocol=3))
    a, b = load_model(str(path)).state_dict(), load_model(str(sg2_fixture)).state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_memory_budget_refuses_a_large_build_and_restores_the_limit():
    resource = pytest.importorskip("resource")
    if not Path("/proc/self/statm").exists():
        pytest.skip("the budget needs /proc (Linux)")
    from ganprior.loading.guards import memory_budget

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(errors.CheckpointLimitError, match="needs more memory"):
        with memory_budget(64 << 20, "net.pkl"):
            torch.empty(1 << 30).fill_(1.0)  # 4 GiB
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    with memory_budget(64 << 20, "net.pkl"):
        torch.ones(1 << 20)  # 4 MiB fits
