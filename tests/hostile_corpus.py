"""The hostile-checkpoint corpus: tiny files, generated on demand, and a runner that loads each one safely.

Every item is a file (or a name) that once crashed, hung, exhausted memory, or ended in a traceback, plus
the error class it must now raise. :func:`run_corpus` loads each item in a forked child of one fresh
process, under ``RLIMIT_AS`` (the address space after imports + 2 GB) and a wall-clock timeout, through
``load_model`` and through the ``ganprior convert`` CLI, and reports the observed error, time and peak
memory. ``python tests/hostile_corpus.py --markdown docs/security/hostile_corpus.md`` writes the table.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from test_security import SystemCall, dump_persistent, _with_payload  # noqa: E402

FIXTURE = "sg2_uncond_32/network-snapshot.stripped.pkl"
MARKER = "payload-ran"
AS_HEADROOM = 2 << 30
TIMEOUT_S = 5.0


@dataclass
class Item:
    name: str
    expected: str  # error class name
    make: Callable[[Path], str]  # writes the file(s) under a folder, returns what to pass to load_model
    what: str
    needs_fixture: bool = False
    setup: Callable[[Path], None] | None = None  # run in the child before loading (cwd, environment)


# ---------------------------------------------------------------------------------------------- builders
P4 = b"\x80\x04"


def _deep_tuple(depth: int) -> bytes:
    return b")" + b"\x85" * depth  # EMPTY_TUPLE, then TUPLE1 depth times


def _official_dict(value_ops: bytes) -> bytes:
    """``{'G_ema': <value>}`` as raw protocol-4 opcodes."""
    return P4 + b"}\x8c\x05G_ema" + value_ops + b"s."


def _torch_zip(data_pkl: bytes) -> bytes:
    """A zip ``torch.save`` archive holding only ``data.pkl`` (enough for the hostile pickles inside)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


BOMB_BYTES = 1 << 27


def _zip_bomb(data_pkl: bytes | None) -> bytes:
    """A zip whose deflated ``archive/data/0`` expands to BOMB_BYTES zeros (written in chunks)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        if data_pkl is not None:
            z.writestr("archive/data.pkl", data_pkl, compress_type=zipfile.ZIP_STORED)
        with z.open("archive/data/0", "w", force_zip64=True) as fh:
            chunk = bytes(1 << 24)
            for _ in range(BOMB_BYTES >> 24):
                fh.write(chunk)
    return out.getvalue()


def _storage_pid(numel: int) -> bytes:
    """Protocol-2 ``data.pkl`` of one FloatStorage persistent id (what torch.save writes)."""
    return (b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ"
            + struct.pack("<i", numel) + b"tQ.")


def _hash_collisions(n: int) -> bytes:
    """``{'G_ema': {k * (2**61 - 1): 0 ...}}`` written as opcodes (building it in Python is itself quadratic)."""
    body = b"".join(b"\x8a" + bytes([len(raw)]) + raw + b"K\x00"
                    for raw in ((k * (2 ** 61 - 1)).to_bytes(11, "little", signed=True) for k in range(1, n + 1)))
    return _official_dict(b"}(" + body + b"u")


def _write(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


class _Reduce:
    """Pickles as ``func(*args)``, then (if given) BUILD with ``state``."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _storage(n: int):
    return torch.ones(n).storage()


def _fixture_tree(official: Path, edit: Callable[[dict], None], edit_records: Callable[[dict], None] | None = None
                  ) -> bytes:
    """The SG2 fixture re-pickled after ``edit`` (on the parsed tree) and ``edit_records`` (on the persistence
    records about to be pickled: shared objects made there stay shared in the file)."""
    from ganprior.loading.safe_pickle import load_official_pickle

    data = load_official_pickle(official / FIXTURE)
    data = {k: data[k] for k in ("G", "D", "G_ema")}
    edit(data)
    records = {k: _with_payload(v, "") for k, v in data.items()}
    if edit_records is not None:
        edit_records(records)
    buf = Path(os.environ.get("TMPDIR", "/tmp")) / f"fixture-edit-{os.getpid()}.pkl"
    dump_persistent(records, buf)
    raw = buf.read_bytes()
    buf.unlink()
    return raw


def _native_file(folder: Path, name: str, edit_config=None, edit_bytes=None) -> str:
    """A copy of the embedded model, re-saved by ganprior (so it carries a digest), then edited."""
    from ganprior.loading import load_model, save_native
    from ganprior.loading.native_check import read_header
    from safetensors.torch import load_file, save_file

    path = folder / name
    save_native(load_model("emoji32"), path)
    if edit_config is not None:
        with open(path, "rb") as fh:
            _, meta = read_header(fh, path.stat().st_size, str(path))
        config = json.loads(meta["config"])
        edit_config(config)
        meta["config"] = json.dumps(config)
        save_file(load_file(str(path)), str(path), metadata=meta)
    if edit_bytes is not None:
        raw = bytearray(path.read_bytes())
        edit_bytes(raw)
        path.write_bytes(bytes(raw))
    return str(path)


def _safetensors_claim(folder: Path) -> str:
    """724 bytes whose header asks for a 29 GB tensor."""
    header = {"__metadata__": {"format": "ganprior-native", "format_version": "1",
                               "config": json.dumps({"family": "stylegan2"})},
              "G.w": {"dtype": "F32", "shape": [90000, 80000], "data_offsets": [0, 90000 * 80000 * 4]}}
    raw = json.dumps(header).encode()
    raw += b" " * (716 - len(raw))
    return _write(folder, "claims_29GB.safetensors", struct.pack("<Q", len(raw)) + raw)


def _fifo(folder: Path) -> str:
    path = folder / "model.pkl"
    os.mkfifo(path)
    return str(path)


def _symlink_to_fifo(folder: Path) -> str:
    target = folder / "pipe"
    os.mkfifo(target)
    link = folder / "link.pkl"
    link.symlink_to(target)
    return str(link)


def _cwd_named_like_registry(folder: Path) -> str:
    (folder / "stylegan2-ada-ffhq").write_bytes(pickle.dumps({"G_ema": SystemCall(f"touch {folder / MARKER}")}))
    return "stylegan2-ada-ffhq"


def _in_folder_offline(folder: Path) -> None:
    os.chdir(folder)
    os.environ["GANPRIOR_OFFLINE"] = "1"
    os.environ["GANPRIOR_CACHE"] = str(folder / "cache")


def _use_cache(folder: Path) -> None:
    os.environ["GANPRIOR_CACHE"] = str(folder / "cache")


def _cached_and_flipped(folder: Path) -> str:
    from ganprior.loading import integrity

    cache = folder / "cache"
    target = cache / "stylegan2-ada-cifar10" / "cifar10.pkl"
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps({"G_ema": {"w": 1}}, protocol=4))
    integrity.record(target, cache, "test")
    raw = bytearray(target.read_bytes())
    raw[-3] ^= 0x01
    target.write_bytes(bytes(raw))
    return "stylegan2-ada-cifar10"


def _biggan_aliased(folder: Path) -> str:
    """A small .pth whose 1,000 tensors are all views of one 4 MB storage: a 4 GB model."""
    base = torch.zeros(1 << 20)
    torch.save({f"blocks.{i}.weight": base.view(1024, 1024) for i in range(1000)}, folder / "G_ema_128.pth")
    return str(folder / "G_ema_128.pth")


def _pth_storage_short(folder: Path) -> str:
    good = io.BytesIO()
    torch.save({"w": torch.ones(4)}, good)
    with zipfile.ZipFile(io.BytesIO(good.getvalue())) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, raw in files.items():
            z.writestr(name, raw[:4] if name.endswith("/data/0") else raw)
    return _write(folder, "G_ema_short.pth", out.getvalue())


def _legacy_blob(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _edit_node(path: str, key: str, value) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        for top in ("G", "G_ema"):
            node = data[top]
            for part in filter(None, path.split(".")):
                node = node.children[part]
            node.state[key] = value
    return edit


def _record_state(records: dict, top: str, path: str) -> dict:
    """The ``state`` dict of the persistence record at ``top.path`` (dotted child names)."""
    state = records[top].meta["state"]
    for part in filter(None, path.split(".")):
        state = state["_modules"][part].meta["state"]
    return state


def _module_cycle(records: dict) -> None:
    """G_ema.mapping shares G_ema's ``_modules`` dict, so it contains itself (a cycle through the memo)."""
    _record_state(records, "G_ema", "mapping")["_modules"] = _record_state(records, "G_ema", "")["_modules"]


def _parameters_list(records: dict) -> None:
    state = _record_state(records, "G_ema", "mapping.fc0")
    state["_parameters"] = list(state["_parameters"].values())


OBJECT_BOMB_ELEMENTS = 1 << 28  # 2 GiB of object pointers


def _ndarray_bomb() -> bytes:
    """31 bytes: ``numpy.ndarray((2**28,), 'O')`` through REDUCE (numpy fills 2 GiB with None first)."""
    return P4 + b"\x8c\x05numpy\x8c\x07ndarray\x93J" + struct.pack("<i", OBJECT_BOMB_ELEMENTS) + b"\x85\x8c\x01O\x86R."


def _reconstruct_bomb() -> bytes:
    """``numpy.core.multiarray._reconstruct(ndarray, (2**28,), b'O')``: the same through numpy's own record."""
    return (P4 + b"\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93J"
            + struct.pack("<i", OBJECT_BOMB_ELEMENTS) + b"\x85C\x01O\x87R.")


def _newobj_bomb() -> bytes:
    """``ndarray.__new__(ndarray, (2**28,), 'O')`` through NEWOBJ."""
    return (P4 + b"\x8c\x05numpy\x8c\x07ndarray\x93J" + struct.pack("<i", OBJECT_BOMB_ELEMENTS)
            + b"\x85\x8c\x01O\x86\x81.")


MANY_TENSORS = 500_000


def _many_tensors(folder: Path) -> str:
    """A ~35 MB native-looking safetensors file with 500,000 one-element tensors (its JSON header alone)."""
    meta = json.dumps({"format": "ganprior-native", "format_version": "1",
                       "config": json.dumps({"family": "stylegan2"})})
    entries = ",".join(f'"t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}'
                       for i in range(MANY_TENSORS))
    header = f'{{"__metadata__":{meta},{entries}}}'.encode()
    return _write(folder, "many_tensors.safetensors",
                  struct.pack("<Q", len(header)) + header + bytes(4 * MANY_TENSORS))


def _drop_child(data: dict) -> None:
    for top in ("G", "G_ema"):
        del data[top].children["synthesis"].children["b4"].children["conv1"]


def corpus_items() -> list[Item]:
    marker_cmd = "touch {folder}/" + MARKER
    deep = 10 ** 6
    items = [
        Item("deep_tuple_dict_key.pkl", "CheckpointLimitError",
             lambda d: _write(d, "deep_tuple_dict_key.pkl", _official_dict(b"}" + _deep_tuple(deep) + b"Ks")),
             "10^6-deep tuple used as a dict key (C-stack overflow when hashed)"),
        Item("deep_tuple_frozenset.pkl", "CheckpointLimitError",
             lambda d: _write(d, "deep_tuple_frozenset.pkl", _official_dict(b"(" + _deep_tuple(deep) + b"\x91")),
             "10^6-deep tuple inside a frozenset"),
        Item("deep_tuple_key.pth", "CheckpointLimitError",
             lambda d: _write(d, "G_ema_deep.pth", _torch_zip(b"\x80\x02}" + _deep_tuple(deep) + b"Ks.")),
             "the same inside a .pth (torch.load weights_only crashes too)"),
        Item("memo_bomb.pkl", "CheckpointLimitError",
             lambda d: _write(d, "memo_bomb.pkl", P4 + b"Nr\xff\xff\xff\x7f."),
             "9 bytes: LONG_BINPUT with index 2^31-1 (CPython sizes its memo to it)"),
        Item("memo_bomb.pth", "CheckpointLimitError",
             lambda d: _write(d, "G_ema_memo.pth", _torch_zip(b"\x80\x02Nr\xff\xff\xff\x7f.")),
             "memo bomb as a .pth data.pkl"),
        Item("huge_string.pkl", "CheckpointLimitError",
             lambda d: _write(d, "huge_string.pkl", P4 + b"\x8d" + struct.pack("<Q", 1 << 40) + b"x."),
             "BINUNICODE8 declaring 1 TB in a 13-byte file"),
        Item("hash_collision_keys.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "hash_collision_keys.pkl", _hash_collisions(40000)),
             "40,000 int keys with one hash, 0.6 MB (quadratic dict building)"),
        Item("zero_stride_view.pkl", "CheckpointLimitError",
             lambda d: _write(d, "zero_stride_view.pkl", pickle.dumps({"G_ema": _Reduce(
                 torch._utils._rebuild_tensor_v2,
                 (_storage(1), 0, (10 ** 9,), (0,), False, collections.OrderedDict()))},
                 protocol=4)),
             "a 1-element storage viewed as 10^9 elements by stride 0"),
        Item("tensor_larger_than_storage.pkl", "CheckpointLimitError",
             lambda d: _write(d, "tensor_larger_than_storage.pkl", pickle.dumps({"G_ema": _Reduce(
                 torch._utils._rebuild_tensor_v2, (_storage(4), 0, (4096,), (1,), False, collections.OrderedDict()))},
                 protocol=4)),
             "a tensor of 4,096 elements over a 4-element storage"),
        Item("storage_larger_than_record.pth", "CheckpointLimitError", _pth_storage_short,
             "a .pth storage declaring 16 bytes whose record holds 4"),
        Item("zip_bomb_blob.pkl", "CheckpointLimitError",
             lambda d: _write(d, "zip_bomb_blob.pkl", pickle.dumps({"G_ema": _Reduce(
                 torch.storage._load_from_bytes, (_zip_bomb(_storage_pid(BOMB_BYTES // 4)),))}, protocol=4)),
             "storage blob that is a zip expanding 128 MB from ~130 kB"),
        Item("zip_bomb.pth", "CheckpointLimitError",
             lambda d: _write(d, "G_ema_bomb.pth", _zip_bomb(_storage_pid(BOMB_BYTES // 4))),
             "a .pth whose data record expands 128 MB from ~130 kB"),
        Item("biggan_aliased_views.pth", "CheckpointLimitError", _biggan_aliased,
             "BigGAN .pth: 1,000 tensors viewing one 4 MB storage (a 4 GB model)"),
        Item("safetensors_29GB.safetensors", "CheckpointLimitError", _safetensors_claim,
             "724-byte safetensors whose header asks for 29 GB"),
        Item("safetensors_header_length.safetensors", "ModelFormatError",
             lambda d: _write(d, "hdr.safetensors", struct.pack("<Q", 1 << 40) + b"{}"),
             "header length of 1 TB"),
        Item("named_pipe model.pkl", "UnsafePathError", _fifo, "a FIFO called model.pkl (open() would block)"),
        Item("symlink_to_pipe.pkl", "UnsafePathError", _symlink_to_fifo, "a symlink resolving to a FIFO"),
        Item("numpy_object_array.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "numpy_object_array.pkl",
                              pickle.dumps({"G_ema": np.array([1, "x", None], dtype=object)}, protocol=4)),
             "NumPy array of dtype 'O' (arbitrary objects inside)"),
        Item("ndarray_object_bomb.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "ndarray_object_bomb.pkl", _ndarray_bomb()),
             "31 bytes: numpy.ndarray((2**28,), 'O') through REDUCE (2 GiB of None before any check)"),
        Item("reconstruct_object_bomb.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "reconstruct_object_bomb.pkl", _reconstruct_bomb()),
             "_reconstruct(ndarray, (2**28,), b'O'): the same bomb through numpy's own record"),
        Item("newobj_ndarray_bomb.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "newobj_ndarray_bomb.pkl", _newobj_bomb()),
             "NEWOBJ ndarray((2**28,), 'O'): the same bomb through NEWOBJ"),
        Item("many_tensors.safetensors", "CheckpointLimitError", _many_tensors,
             "35 MB safetensors whose header lists 500,000 tensors (a bare MemoryError once)"),
        Item("build_rewrites_tensor.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "build_rewrites_tensor.pkl", pickle.dumps({"G_ema": _Reduce(
                 torch._utils._rebuild_tensor_v2, (_storage(4), 0, (4,), (1,), False, collections.OrderedDict()),
                 (_storage(1), 0, (10 ** 6,), (1,)))}, protocol=4)),
             "BUILD after a tensor was rebuilt (Tensor.__setstate__ would re-point it past its storage)"),
        Item("nested_blob_payload.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "nested_blob_payload.pkl", pickle.dumps({"G_ema": _Reduce(
                 torch.storage._load_from_bytes, (_legacy_blob(SystemCall(marker_cmd.format(folder=d))),))},
                 protocol=4)),
             "storage blob holding an os.system payload (torch's message advises weights_only=False)"),
        Item("ext_opcode.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "ext_opcode.pkl", P4 + b"\x82\x01."), "EXT1 (copyreg extension registry)"),
        Item("long_global_name.pkl", "UnsafeCheckpointError",
             lambda d: _write(d, "long_global_name.pkl", P4 + b"\x8d" + struct.pack("<Q", 9 << 20) + b"m" * (9 << 20)
                              + b"\x8c\x01x\x93)R."),
             "a 9 MB module name (error messages once echoed such names: 50 MB)"),
        Item("truncated.pkl", "CorruptCheckpointError",
             lambda d: _write(d, "truncated.pkl", pickle.dumps({"G_ema": list(range(1000))}, protocol=4)[:500]),
             "a pickle cut in half"),
        Item("flipped_weight_bytes.safetensors", "IntegrityError",
             lambda d: _native_file(d, "flipped.safetensors",
                                    edit_bytes=lambda raw: raw.__setitem__(-1000, raw[-1000] ^ 4)),
             "one flipped bit in a native file's weights"),
        Item("cache_manifest_mismatch", "IntegrityError", _cached_and_flipped,
             "a cached download changed after its SHA-256 was recorded", setup=_use_cache),
        Item("nan_lr_multiplier.safetensors", "ModelFormatError",
             lambda d: _native_file(d, "nan.safetensors",
                                    edit_config=lambda c: c["generator"]["mapping_kwargs"].update(
                                        lr_multiplier=float("nan"))),
             "native config with lr_multiplier NaN"),
        Item("list_activation.safetensors", "CorruptCheckpointError",
             lambda d: _native_file(d, "act.safetensors",
                                    edit_config=lambda c: c["generator"]["mapping_kwargs"].update(
                                        activation=["lrelu"])),
             "native config with a list as activation name"),
        Item("huge_w_dim.safetensors", "CheckpointLimitError",
             lambda d: _native_file(d, "wdim.safetensors",
                                    edit_config=lambda c: c["generator"].update(w_dim=1 << 21)),
             "native config with w_dim = 2^21 (a 4.6 GB network)"),
        Item("cwd_file_named_like_registry_model", "ModelNotAvailableError", _cwd_named_like_registry,
             "a hostile file in the cwd called 'stylegan2-ada-ffhq' (the registry entry is meant)",
             setup=_in_folder_offline),
    ]
    official = [
        ("huge_w_dim.pkl", "CheckpointLimitError", _edit_node("", "w_dim", 1 << 21),
         "official pickle with stored w_dim = 2^21"),
        ("nan_lr_multiplier.pkl", "CorruptCheckpointError", _edit_node("mapping.fc0", "bias_gain", float("nan")),
         "official pickle with bias_gain (lr_multiplier) NaN"),
        ("list_activation.pkl", "CorruptCheckpointError", _edit_node("mapping.fc0", "activation", ["lrelu"]),
         "official pickle with a list as activation name"),
        ("missing_layer.pkl", "CorruptCheckpointError", _drop_child,
         "official pickle missing a layer its attributes imply (KeyError inside the build)"),
    ]
    import hostile_dill  # issue 29: a refused twin of every record shape accepted for XL snapshots

    for name, expected, _, what in hostile_dill.twins(""):
        items.append(Item(name, expected, (lambda n: lambda d: _write(d, n, {
            t[0]: t[2] for t in hostile_dill.twins(marker_cmd.format(folder=d))}[n]))(name), what))
    official += [
        ("module_cycle.pkl", "CorruptCheckpointError", (lambda data: None, _module_cycle),
         "official pickle whose G_ema.mapping shares G_ema's _modules dict (a cycle; RecursionError once)"),
        ("parameters_list.pkl", "CorruptCheckpointError", (lambda data: None, _parameters_list),
         "official pickle whose mapping.fc0._parameters is a list (AttributeError once)"),
    ]
    for name, expected, edit, what in official:
        edits = edit if isinstance(edit, tuple) else (edit, None)
        items.append(Item(name, expected, (lambda e, n: lambda d: _write(d, n, _fixture_tree(_official_dir(), *e)))(
            edits, name), what, needs_fixture=True))
    return items


def _official_dir() -> Path:
    shared = Path(os.environ.get("GANPRIOR_SHARED", HERE.parents[0].parent / "shared"))
    return shared / "fixtures" / "official"


# ---------------------------------------------------------------------------------------------- runner
def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return -1


def _child(item: Item, target: str, folder: Path, mode: str) -> dict:
    """Runs in the forked child: limits, then one load; returns what happened."""
    import resource

    if item.setup is not None:
        item.setup(folder)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak-RSS mark to the current RSS
    except OSError:
        pass
    rss0 = _status("VmRSS:")
    vm = _status("VmSize:")
    resource.setrlimit(resource.RLIMIT_AS, (vm + AS_HEADROOM, resource.getrlimit(resource.RLIMIT_AS)[1]))
    t0 = time.perf_counter()
    if mode == "load_model":
        from ganprior.loading import load_model
        try:
            load_model(target)
            observed, message, mro = "loaded", "", []
        except BaseException as exc:  # noqa: BLE001 - the point is to see what escapes
            observed, message = type(exc).__name__, str(exc)
            mro = [c.__name__ for c in type(exc).__mro__]
    else:
        from click.testing import CliRunner

        from ganprior.cli.main import cli
        result = CliRunner().invoke(cli, ["convert", target, str(folder / "converted.safetensors")])
        raw = result.exception is not None and not isinstance(result.exception, SystemExit)
        observed = f"traceback {type(result.exception).__name__}" if raw else f"exit {result.exit_code}"
        message = result.output.strip()
        mro = [observed]
    elapsed = time.perf_counter() - t0
    peak = _status("VmHWM:") - rss0
    return {"observed": observed, "mro": mro, "message": message[:2000], "message_len": len(message),
            "time_s": elapsed, "peak_mb": peak / 2 ** 20}


def _run_forked(item: Item, target: str, folder: Path, mode: str, timeout: float) -> dict:
    import select
    import signal

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            out = _child(item, target, folder, mode)
        except BaseException as exc:  # noqa: BLE001
            out = {"observed": f"runner error {type(exc).__name__}: {exc}", "mro": [], "message": "",
                   "message_len": 0, "time_s": 0.0, "peak_mb": 0.0}
        with os.fdopen(write_fd, "w") as fh:
            fh.write(json.dumps(out))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        if not select.select([fh], [], [], timeout)[0]:  # readable: the child wrote its report or died
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"observed": "hang (killed)", "mro": [], "message": "", "message_len": 0,
                    "time_s": timeout, "peak_mb": float("nan")}
        report = fh.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"observed": f"crash (signal {os.WTERMSIG(status)})", "mro": [], "message": "", "message_len": 0,
                "time_s": float("nan"), "peak_mb": float("nan")}
    return json.loads(report)


def run_corpus(folder: Path, timeout: float = TIMEOUT_S) -> list[dict]:
    """Every corpus item through load_model and through ``ganprior convert``; one row per item."""
    torch.set_num_threads(1)
    have_fixture = (_official_dir() / FIXTURE).is_file()
    rows = []
    for index, item in enumerate(corpus_items()):
        if item.needs_fixture and not have_fixture:
            continue
        sub = folder / f"{index:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        target = item.make(sub)
        size = sum(p.stat().st_size for p in sub.rglob("*") if p.is_file() and not p.is_symlink())
        load = _run_forked(item, target, sub, "load_model", timeout)
        cli = _run_forked(item, target, sub, "cli", timeout)
        rows.append({"file": item.name, "what": item.what, "bytes": size, "expected": item.expected,
                     "observed": load["observed"], "refused": item.expected in load["mro"],
                     "message_len": load["message_len"], "message": load["message"][:300].replace(str(sub), "<dir>"),
                     "time_s": load["time_s"], "peak_mb": load["peak_mb"],
                     "cli": cli["observed"], "cli_message": cli["message"][:400],
                     "cli_time_s": cli["time_s"], "cli_peak_mb": cli["peak_mb"],
                     "payload_ran": (sub / MARKER).exists()})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["# Hostile-checkpoint corpus", "",
             "Generated by `python tests/hostile_corpus.py --markdown docs/security/hostile_corpus.md` "
             "(the same corpus `tests/test_hostile_files.py` runs). Each file is loaded in a forked child under "
             f"`RLIMIT_AS` = address space after imports + 2 GiB and a {TIMEOUT_S:.0f} s timeout, once through "
             "`load_model` and once through `ganprior convert` (CLI). *time* and *peak* are for the `load_model` "
             "call (peak = growth of the resident set over the child's start); *CLI* is the command's exit "
             "status (1 = one-line error, no traceback).", "",
             "| file | bytes | expected | observed | refused | time (s) | peak (MB) | msg chars | CLI | payload ran |",
             "|---|---:|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| `{r['file']}` | {r['bytes']:,} | {r['expected']} | {r['observed']} | "
                     f"{'yes' if r['refused'] else '**NO**'} | {r['time_s']:.3f} | {r['peak_mb']:.1f} | "
                     f"{r['message_len']} | {r['cli']} | {'**YES**' if r['payload_ran'] else 'no'} |")
    lines += ["", "## What each file is", ""]
    lines += [f"* `{r['file']}`: {r['what']}. Message: {r['message']!r}" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_corpus(Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        from ganprior.atomic import atomic_write_text

        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.markdown, markdown(rows))
    else:
        print(markdown(rows))
    return 0 if all(r["refused"] and not r["payload_ran"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
