"""Tensors from checkpoint records, with nothing trusted: storages from raw bytes, views checked against them.

Used by the official-pickle unpickler (storage blobs, ``_rebuild_tensor_v2``) and by :func:`read_zip_state_dict`,
which reads a zip ``torch.save`` state dict (a DGP ``.pth``) with the C unpickler and an allow-list narrower
than ``torch.load(weights_only=True)``'s: an OrderedDict of tensors, parameters and their storages, nothing
else. The file has already passed the pre-scan (``torch_files.scan_torch_file``) when this runs.
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import zipfile
from typing import Any, BinaryIO

import torch

from ganprior.loading.errors import CorruptCheckpointError, UnsafeCheckpointError
from ganprior.loading.pickle_scan import check_view

STORAGE_DTYPES = {"Double": torch.float64, "Float": torch.float32, "Half": torch.float16, "BFloat16": torch.bfloat16,
                  "Long": torch.int64, "Int": torch.int32, "Short": torch.int16, "Char": torch.int8,
                  "Byte": torch.uint8, "Bool": torch.bool}


def storage_from_bytes(raw: bytes | bytearray, type_name: str) -> torch.TypedStorage:
    """A CPU storage of ``STORAGE_DTYPES[type_name]`` over ``raw`` (little-endian data; bytes are copied,
    a bytearray is used in place)."""
    buffer = raw if isinstance(raw, bytearray) else bytearray(raw)
    untyped = torch.frombuffer(buffer, dtype=torch.uint8).untyped_storage() if buffer else torch.UntypedStorage(0)
    return torch.TypedStorage(wrap_storage=untyped, dtype=STORAGE_DTYPES[type_name], _internal=True)


def rebuild_tensor(storage: Any, storage_offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` after checking the view lies inside its storage."""
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise UnsafeCheckpointError("tensor rebuilt from something that is not a storage")
    if not isinstance(storage_offset, int) or not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise CorruptCheckpointError("tensor size/stride/offset are not plain integers")
    untyped = storage._untyped_storage if isinstance(storage, torch.TypedStorage) else storage
    t = torch.empty(0, dtype=storage.dtype)
    check_view(untyped.nbytes() // t.element_size(), storage_offset, size, stride, "tensor record")
    t.set_(untyped, storage_offset, tuple(size), tuple(stride))
    return t


def rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, *_: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafeCheckpointError("parameter rebuilt from something that is not a tensor")
    return torch.nn.Parameter(data, requires_grad=False)


class _StorageType:
    """What ``torch.<X>Storage`` names inside a persistent id: only its element type matters."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


class _StateDictUnpickler(pickle.Unpickler):
    _GLOBALS = {("collections", "OrderedDict"): collections.OrderedDict,
                ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
                ("torch._utils", "_rebuild_parameter"): rebuild_parameter}

    def __init__(self, data: bytes, archive: zipfile.ZipFile, fh: BinaryIO, prefix: str, label: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.fh, self.prefix, self.label = archive, fh, prefix, label
        self.storages: dict[str, torch.TypedStorage] = {}

    def _record(self, name: str) -> bytearray:
        """A record's bytes; stored (uncompressed) records are read straight from the file, as torch does,
        without zipfile's per-record CRC pass (the scan already matched their sizes)."""
        info = self.archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return bytearray(self.archive.read(info))
        self.fh.seek(info.header_offset)
        local = self.fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise CorruptCheckpointError(f"{self.label}: bad local header for {name!r}")
        self.fh.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                     + int.from_bytes(local[28:30], "little"))
        raw = bytearray(info.file_size)
        if self.fh.readinto(raw) != info.file_size:
            raise CorruptCheckpointError(f"{self.label} is truncated inside {name!r}")
        return raw

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._GLOBALS:
            return self._GLOBALS[(module, name)]
        if module == "torch" and name.endswith("Storage") and name[:-len("Storage")] in STORAGE_DTYPES:
            return _StorageType(name[:-len("Storage")])
        raise UnsafeCheckpointError(f"{self.label} references {module[:60]}.{name[:60]}, not just tensors; "
                                    "refusing to load it")

    def persistent_load(self, pid: Any) -> torch.TypedStorage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str)):
            raise UnsafeCheckpointError(f"{self.label}: persistent id that is not a storage record")
        key = pid[2]
        if key not in self.storages:
            self.storages[key] = storage_from_bytes(self._record(f"{self.prefix}data/{key}"), pid[1].type_name)
        return self.storages[key]


def read_zip_state_dict(fh: BinaryIO, label: str) -> Any | None:
    """The object of a zip ``torch.save`` file that passed the pre-scan; None when it is not little-endian
    (then ``torch.load(weights_only=True)`` handles the byte swap)."""
    fh.seek(0)
    archive = zipfile.ZipFile(fh)
    names = archive.namelist()
    pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    prefix = pickles[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() != b"little" \
            or sys.byteorder != "little":
        return None
    try:
        return _StateDictUnpickler(archive.read(pickles[0]), archive, fh, prefix, label).load()
    except (UnsafeCheckpointError, CorruptCheckpointError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            RuntimeError, zipfile.BadZipFile) as exc:
        raise CorruptCheckpointError(f"{label} is truncated or corrupt: "
                                     f"{type(exc).__name__}: {str(exc)[:120]}") from exc
