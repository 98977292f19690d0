"""SHA-256 of every file the cache holds, recorded when it is downloaded or converted and re-checked on load.

The manifest is ``<cache>/manifest.json``: ``{"files": {"<path relative to the cache>": {"sha256", "bytes",
"origin"}}}``. A registry entry may also pin a published hash (``RemoteFile.sha256``); the upstream
projects publish none for the official checkpoints and none can be computed offline, so today only the
mechanism is pinned (and tested). ``ganprior models --verify`` re-hashes everything.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ganprior.atomic import atomic_write_text
from ganprior.loading.errors import IntegrityError
from ganprior.loading.guards import open_regular

MANIFEST = "manifest.json"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "file") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_path(cache: Path) -> Path:
    return cache / MANIFEST


def read_manifest(cache: Path) -> dict[str, dict]:
    """The recorded files (an unreadable manifest counts as empty: every file is then just unrecorded)."""
    try:
        data = json.loads(_manifest_path(cache).read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _key(path: Path, cache: Path) -> str | None:
    try:
        return path.resolve().relative_to(cache.resolve()).as_posix()
    except ValueError:
        return None


def record(path: str | os.PathLike, cache: Path, origin: str) -> str | None:
    """Hash ``path`` (inside ``cache``) into the manifest; returns the digest (None for files outside)."""
    path = Path(path)
    key = _key(path, cache)
    if key is None:
        return None
    digest = sha256_file(path)
    files = read_manifest(cache)
    files[key] = {"sha256": digest, "bytes": path.stat().st_size, "origin": origin}
    atomic_write_text(_manifest_path(cache), json.dumps({"files": files}, indent=1, sort_keys=True))
    return digest


def verify(path: str | os.PathLike, cache: Path, pinned: str | None = None) -> bool:
    """Re-hash ``path`` against its pinned hash and its manifest entry; True if anything was checked."""
    path = Path(path)
    key = _key(path, cache)
    recorded = read_manifest(cache).get(key, {}).get("sha256") if key is not None else None
    if pinned is None and recorded is None:
        return False
    digest = sha256_file(path)
    if pinned is not None and digest != pinned:
        raise IntegrityError(f"{path} does not have its published SHA-256 ({pinned[:16]}...); "
                             "delete it and download it again")
    if recorded is not None and digest != recorded:
        raise IntegrityError(f"{path} changed since it was stored in the cache (SHA-256 mismatch); "
                             "delete it and download or convert it again")
    return True


def verify_all(cache: Path) -> list[dict]:
    """One row per manifest entry: path, status ("ok" | "changed" | "missing"), origin."""
    rows = []
    for key, entry in sorted(read_manifest(cache).items()):
        path = cache / key
        if not path.is_file():
            status = "missing"
        else:
            status = "ok" if sha256_file(path) == entry.get("sha256") else "changed"
        rows.append({"path": str(path), "status": status, "origin": entry.get("origin", "?")})
    return rows
