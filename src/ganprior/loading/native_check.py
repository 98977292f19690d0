"""Read a ``.safetensors`` file only after its header is checked against the bytes present, and detect flips.

The header is JSON that states every tensor's dtype, shape and byte range. A hostile header can claim
gigabytes from a few hundred bytes, overlap ranges, or carry NaN/huge values in the config; all of that
is refused here before a single tensor is made. Native files written by ganprior also carry
:data:`DIGEST_KEY`, a SHA-256 over every tensor (name, dtype, shape, bytes); it is re-computed on load, so
a flipped bit in the weights is an :class:`IntegrityError`. Files written before the digest existed load
without that check.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import torch

from ganprior.loading.errors import (
    CheckpointLimitError,
    CorruptCheckpointError,
    IntegrityError,
)
from ganprior.loading.guards import open_regular
from ganprior.loading.pickle_scan import current_limits, over_limit

DIGEST_KEY = "tensors_sha256"

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}


class NotSafetensorsError(CorruptCheckpointError):
    """The bytes are not a safetensors file at all (as opposed to a broken one)."""


@dataclass
class Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute file offsets
    end: int


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def read_header(fh: BinaryIO, size: int, label: str) -> tuple[list[Entry], dict[str, str]]:
    """Tensor entries (sorted by offset, checked to tile the data section exactly) and the metadata."""
    fh.seek(0)
    head = fh.read(8)
    if len(head) < 8:
        raise NotSafetensorsError(f"{label} is not a safetensors file (only {size} bytes)")
    n = struct.unpack("<Q", head)[0]
    if 8 + n > size:
        raise NotSafetensorsError(f"{label} is not a safetensors file: header length {n:,} "
                                  f"does not fit in {size:,} bytes")
    limits = current_limits()
    if n > limits.max_header_bytes:  # JSON parsing costs many times the header's size, before any check
        raise CheckpointLimitError(f"{label}: " + over_limit(f"a {n:,}-byte safetensors header",
                                                             "max_header_bytes", limits.max_header_bytes))
    raw = fh.read(n)
    objects = raw.count(b"{")  # one per tensor entry (+ the header and its metadata), counted before parsing
    if objects > limits.max_tensors + 2:
        raise CheckpointLimitError(f"{label}: " + over_limit(f"a header of up to {objects - 2:,} tensor entries",
                                                             "max_tensors", limits.max_tensors))
    try:
        header = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise NotSafetensorsError(f"{label} is not a safetensors file: bad header ({exc})") from exc
    if not isinstance(header, dict):
        raise NotSafetensorsError(f"{label} is not a safetensors file: header is not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise CorruptCheckpointError(f"{label}: safetensors metadata must map strings to strings")
    data_start, entries = 8 + n, []
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in DTYPES:
            raise CorruptCheckpointError(f"{label}: tensor {name[:60]!r} has an unknown dtype")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or len(shape) > 8 or not all(type(s) is int and s >= 0 for s in shape) \
                or not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise CorruptCheckpointError(f"{label}: tensor {name[:60]!r} has a malformed shape or offsets")
        numel = 1
        for s in shape:
            numel *= s
        begin, end = offsets
        nbytes = numel * torch.empty(0, dtype=DTYPES[info["dtype"]]).element_size()
        if not 0 <= begin <= end or end - begin != nbytes:
            raise CorruptCheckpointError(f"{label}: tensor {name[:60]!r} of shape {shape} needs {nbytes:,} bytes, "
                                         f"its offsets give {end - begin:,}")
        if data_start + end > size:
            raise CheckpointLimitError(f"{label}: tensor {name[:60]!r} claims {nbytes:,} bytes up to offset "
                                       f"{data_start + end:,}; the file has {size:,}")
        entries.append(Entry(name, info["dtype"], tuple(shape), data_start + begin, data_start + end))
    entries.sort(key=lambda e: (e.begin, e.end))
    position = data_start
    for e in entries:
        if e.begin != position:
            raise CorruptCheckpointError(f"{label}: tensor byte ranges overlap or leave gaps (at {e.name[:60]!r})")
        position = e.end
    if position != size:
        raise CorruptCheckpointError(f"{label}: {size - position:,} bytes after the last tensor")
    return entries, metadata


def _update(digest: hashlib._Hash, name: str, dtype: str, shape: tuple[int, ...], data) -> None:
    digest.update(f"{name}\0{dtype}\0{list(shape)}\0".encode())
    digest.update(data)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor in name order (name, dtype, shape, little-endian bytes)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
        _update(digest, name, _NAMES[t.dtype], tuple(t.shape), memoryview(raw))
    return digest.hexdigest()


def read_tensors(fh: BinaryIO, entries: list[Entry], metadata: dict[str, str], label: str) -> dict[str, torch.Tensor]:
    """The tensors, read from the checked byte ranges only; the digest verified when the file has one."""
    expected = metadata.get(DIGEST_KEY)
    tensors = {}
    digest = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.name):
        raw = bytearray(e.end - e.begin)
        fh.seek(e.begin)
        if fh.readinto(raw) != len(raw):
            raise CorruptCheckpointError(f"{label} is truncated inside tensor {e.name[:60]!r}")
        if expected is not None:
            _update(digest, e.name, e.dtype, e.shape, raw)
        flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        tensors[e.name] = flat.view(DTYPES[e.dtype]).reshape(e.shape)
    if expected is not None and digest.hexdigest() != expected:
        raise IntegrityError(f"{label}: tensor bytes do not match the SHA-256 recorded in the file "
                             "(corrupted or modified weights)")
    return tensors


def verify_digest(path: str | os.PathLike) -> bool:
    """Check a safetensors file's header and tensor digest; False when it has no digest to check."""
    with open_regular(path, "model file") as fh:
        entries, metadata = read_header(fh, os.fstat(fh.fileno()).st_size, str(path))
        read_tensors(fh, entries, metadata, str(path))
    return DIGEST_KEY in metadata
