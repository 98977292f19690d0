"""``torch.save`` files, whole (``.pth``) or nested in official pickles as storage blobs, scanned before loading.

Two layouts exist: the legacy one (a sequence of pickles -- magic number, protocol, sys_info, the object,
its storage keys -- then each storage as an 8-byte element count and raw bytes) and the zip archive
(``data.pkl`` plus one record per storage). Both are walked by :class:`~ganprior.loading.pickle_scan.PickleScan`
and every declared storage size is compared with the bytes actually stored; zip entries are bounded in
size and compression ratio before anything is decompressed.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile

from ganprior.loading.errors import (
    CheckpointLimitError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)
from ganprior.loading.pickle_scan import (
    STORAGE_ITEMSIZE,
    Node,
    PickleScan,
    ScanLimits,
    current_limits,
)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# What every legacy storage blob of an official pickle looks like (torch.storage.__reduce__ output). A blob
# that matches byte for byte needs no opcode walk; anything else gets the full scan below.
_BLOB_RECORD = re.compile(
    rb"\x80\x02\(X\x07\x00\x00\x00storageq\x00ctorch\n([A-Za-z0-9]{1,16})Storage\nq\x01"
    rb"X([\x01-\x20])\x00\x00\x00([0-9]{1,32})q\x02X\x03\x00\x00\x00cpuq\x03"
    rb"(?:K(.)|M(..)|J(....))Ntq\x04Q\.\x80\x02\]q\x00X([\x01-\x20])\x00\x00\x00([0-9]{1,32})q\x01a\.",
    re.DOTALL)
_ACCEPTED_HEADERS: set[bytes] = set()  # legacy header pickles (magic, protocol, sys_info) already scanned


_LITTLE_ENDIAN = b"X\r\x00\x00\x00little_endianq\x02\x88"


def blob_layout(blob: bytes, label: str = "storage blob") -> tuple[str, int, int, int] | None:
    """``(storage type, numel, itemsize, data offset)`` of a legacy blob that matches :data:`_BLOB_RECORD`
    after a little-endian header already accepted by a full scan; None for any other blob."""
    head_len = blob.find(b"\x80\x02(X\x07\x00\x00\x00storage", 0, 512)
    if head_len <= 0 or blob[:head_len] not in _ACCEPTED_HEADERS:
        return None
    m = _BLOB_RECORD.match(blob, head_len, head_len + 256)
    if m is None or m[1].decode() not in STORAGE_ITEMSIZE or m[2][0] != len(m[3]) or m[7][0] != len(m[8]) \
            or m[3] != m[8]:
        return None
    numel = (m[4][0] if m[4] is not None else struct.unpack("<H", m[5])[0] if m[5] is not None
             else struct.unpack("<i", m[6])[0])
    itemsize = STORAGE_ITEMSIZE[m[1].decode()]
    data = m.end()
    if len(blob) - data < 8 or struct.unpack_from("<q", blob, data)[0] != numel or \
            len(blob) - data - 8 != numel * itemsize:
        raise CheckpointLimitError(f"{label}: storage declares {numel:,} elements but holds "
                                   f"{max(0, len(blob) - data - 8):,} bytes")
    return m[1].decode(), numel, itemsize, data + 8


def _scan_legacy(buf: bytes, label: str, limits: ScanLimits) -> PickleScan:
    """Legacy ``torch.save``: magic, protocol, sys_info, the object, its storage keys, then raw storages."""
    pos = 0
    header = PickleScan(buf, label, limits=limits)
    magic, pos = header.run(pos)
    protocol, pos = header.run(pos)
    _, pos = header.run(pos)
    if magic != _LEGACY_MAGIC or protocol != 1001:
        raise CorruptCheckpointError(f"{label} is not a torch.save file (bad magic number or protocol)")
    header_end = pos
    main = PickleScan(buf, label, persistent_ids=True, limits=limits)
    main.result, pos = main.run(pos)
    keys_scan = PickleScan(buf, label, keep_lists=True, limits=limits)
    keys, pos = keys_scan.run(pos)
    if type(keys) is not Node or keys.kind != "list" or not all(type(k) is str for k in keys.items or ()):
        raise CorruptCheckpointError(f"{label}: the storage key list is malformed")
    if sorted(keys.items or ()) != sorted(main.storages):
        raise CorruptCheckpointError(f"{label}: storage keys do not match the storages the object uses")
    for key in keys.items or ():
        numel, itemsize = main.storages[key]
        if pos + 8 > len(buf) or struct.unpack_from("<q", buf, pos)[0] != numel:
            raise CorruptCheckpointError(f"{label}: storage {key!r} size header does not match its record")
        pos += 8 + numel * itemsize
        if pos > len(buf):
            raise CheckpointLimitError(f"{label}: storage {key!r} declares {numel * itemsize:,} bytes, "
                                       "more than the file holds")
    if pos != len(buf):
        raise CorruptCheckpointError(f"{label}: {len(buf) - pos:,} unexpected bytes after the storages")
    if _LITTLE_ENDIAN in buf[:header_end]:
        _ACCEPTED_HEADERS.add(bytes(buf[:header_end]))
    return main


def _scan_zip(data: io.BufferedIOBase | io.BytesIO, size: int, label: str, limits: ScanLimits) -> PickleScan:
    """``torch.save`` zip archive: bounded entries, a scanned ``data.pkl``, storages matching their records."""
    try:
        archive = zipfile.ZipFile(data)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptCheckpointError(f"{label} is not a valid zip archive: {exc}") from exc
    entries = {}
    for info in infos:
        if info.filename in entries:
            raise CorruptCheckpointError(f"{label}: duplicate zip entry {info.filename!r}")
        ratio = info.file_size / max(1, info.compress_size)
        if info.compress_type != zipfile.ZIP_STORED and ratio > limits.max_zip_ratio:
            raise CheckpointLimitError(f"{label}: zip entry {info.filename!r} expands {ratio:,.0f}x "
                                       f"to {info.file_size:,} bytes (zip bomb)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise CorruptCheckpointError(f"{label}: stored zip entry {info.filename!r} has inconsistent sizes")
        entries[info.filename] = info
    total = sum(i.file_size for i in infos)
    if total > size * limits.max_zip_ratio + (1 << 20):
        raise CheckpointLimitError(f"{label}: zip entries expand to {total:,} bytes from {size:,} (zip bomb)")
    pickles = [n for n in entries if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise CorruptCheckpointError(f"{label}: expected one data.pkl in the archive, found {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    try:
        raw = archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise CorruptCheckpointError(f"{label}: cannot read data.pkl: {exc}") from exc
    scan = PickleScan(raw, label, persistent_ids=True, limits=limits)
    scan.result, _ = scan.run()
    for key, (numel, itemsize) in scan.storages.items():
        info = entries.get(f"{prefix}data/{key}")
        if info is None:
            raise CorruptCheckpointError(f"{label}: storage {key!r} has no data record")
        if info.file_size != numel * itemsize:
            raise CheckpointLimitError(f"{label}: storage {key!r} declares {numel * itemsize:,} bytes "
                                       f"but its record holds {info.file_size:,}")
    return scan


def scan_storage_blob(blob: bytes, label: str, limits: ScanLimits | None = None) -> tuple[int, int]:
    """``(numel, itemsize)`` of the single storage a nested ``torch.save`` blob holds; raises otherwise."""
    limits = limits or current_limits()
    if bytes(blob[:4]) == b"PK\x03\x04":
        scan = _scan_zip(io.BytesIO(blob), len(blob), label, limits)
    else:
        fast = blob_layout(blob, label)
        if fast is not None:
            return fast[1], fast[2]
        scan = _scan_legacy(blob, label, limits)
    result = scan.result
    if type(result) is not Node or result.kind != "storage":
        raise UnsafeCheckpointError(f"{label}: storage blob decodes to something other than one storage")
    return result.info


def scan_torch_file(fh: io.BufferedIOBase, size: int, label: str, limits: ScanLimits | None = None) -> PickleScan:
    """Scan a whole ``torch.save`` file (zip or legacy) read from ``fh``; returns the scan of its object."""
    limits = limits or current_limits()
    fh.seek(0)
    head = fh.read(4)
    fh.seek(0)
    if head == b"PK\x03\x04":
        scan = _scan_zip(fh, size, label, limits)
    else:
        scan = _scan_legacy(fh.read(), label, limits)
    scan.check_aliasing()
    fh.seek(0)
    return scan
