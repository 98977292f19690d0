"""Resuming a batch without lying: reuse a run folder only when it was made from the same inputs, and never
let two processes restore the same image.

* A run's *fingerprint* (``config.fingerprint`` in ``run.json``) is a digest of everything that decides
  its result (input pixels, task, mask, method and its options, model weights, seed, steps, ...);
  :func:`reusable` compares it with the fingerprint of the run about to start and says what differs.
* :func:`claim` takes an exclusive ``flock`` on ``OUT/.NAME.lock`` (released by the kernel when its
  process dies, so a killed run never leaves a lock that blocks the next one; the file names the owner's
  pid and host for the message). While holding the claim, :func:`remove_stale_partials` deletes the ``.NAME.*.partial`` folders
  that a killed save left behind.

Torch-free, so the CLI can use it before the model loads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"


class ClaimedError(RuntimeError):
    """Another live process is restoring this image into the same folder."""


def fingerprint(parts: dict[str, Any]) -> dict[str, Any]:
    """``{"digest": sha256 of the canonical JSON of parts, "parts": parts}``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return {"digest": hashlib.sha256(text.encode()).hexdigest(), "parts": json.loads(text)}


def read_run(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The run.json of a finished run folder, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads((Path(directory) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def reusable(directory: str | os.PathLike, wanted: dict[str, Any]) -> tuple[bool, str]:
    """(True, "") when the finished run in ``directory`` has the ``wanted`` fingerprint, else (False, why)."""
    record = read_run(directory)
    if record is None:
        return False, "no finished run"
    found = (record.get("config") or {}).get("fingerprint")
    if not isinstance(found, dict) or "digest" not in found:
        return False, "its run.json has no fingerprint (made by an older version)"
    if found["digest"] == wanted["digest"]:
        return True, ""
    old, new = found.get("parts") or {}, wanted["parts"]
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return False, f"it was made with another {', '.join(differ) or 'configuration'}"


def run_folder(out_dir: str | os.PathLike, stem: str, method: str) -> Path:
    """Where ``ganprior restore`` puts image ``stem`` restored with ``method``: ``OUT/<stem>``, unless that
    folder holds a run of another method, then ``OUT/<stem>-<method>`` (comparing methods in one ``--out``
    never overwrites the first)."""
    plain = Path(out_dir) / stem
    made_with = ((read_run(plain) or {}).get("config") or {}).get("method")
    if made_with is None or str(made_with).lower() == method.lower():
        return plain
    return Path(out_dir) / f"{stem}-{method.lower()}"


def request_digest(image: str | os.PathLike, settings: dict[str, Any]) -> str:
    """A digest of an image file's bytes and the command-line settings of its run (``config.request``
    in ``run.json``): equal digests let a re-run skip a finished image before any model loads."""
    digest = hashlib.sha256(Path(image).read_bytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def recorded_request(directory: str | os.PathLike) -> str | None:
    """The request digest a finished run folder recorded (None without one)."""
    return ((read_run(directory) or {}).get("config") or {}).get("request")


def _lock_path(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.lock"


def _owner(lock: Path) -> dict[str, Any]:
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


@contextlib.contextmanager
def claim(directory: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of run folder ``directory`` for the ``with`` block; :class:`ClaimedError` when another
    process holds it.

    ``flock`` on ``.NAME.lock``: the kernel drops it when its process dies (even by ``kill -9``), so a
    lock is never stale. The file is removed on release; a process that locked a file that was removed
    meanwhile sees that its inode is no longer the path's and tries again.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_path(directory)
    for _ in range(10):
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = _owner(lock)
            raise ClaimedError(f"{directory} is being restored by process {owner.get('pid', '?')} on "
                               f"{owner.get('host', '?')} (lock {lock})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # we locked a file its owner had just removed
    else:
        raise ClaimedError(f"could not take the lock {lock}")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still holding it, so no one else owns this inode
        os.close(fd)


def remove_stale_partials(directory: str | os.PathLike) -> list[Path]:
    """Delete the ``.NAME.*.partial`` folders a killed save left next to run folder ``directory``.

    Call it only while holding :func:`claim` for ``directory``: no live process can be writing them then.
    """
    directory = Path(directory)
    if not directory.parent.is_dir():
        return []
    removed = []
    for partial in directory.parent.glob(f".{directory.name}.*.partial"):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed
