"""Checks every loader shares: regular files only, a memory budget while a network is built, sane configs.

The budget exists because a stored attribute (``w_dim = 2**21``) or a native config can describe a network
far larger than the tensors the file carries; the constructor would allocate it before any shape check.
While a network is built, the process's address-space limit is lowered to what it uses now plus a budget
proportional to the values the file carries, so such an allocation fails at once (Linux; elsewhere the
config range checks still apply) and becomes a :class:`CheckpointLimitError`.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ganprior.loading.errors import CheckpointError, CheckpointLimitError, CorruptCheckpointError, UnsafePathError
from ganprior.ops.bias_act import ACTIVATIONS

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

T = TypeVar("T")

MAX_CONFIG_INT = 1 << 24
BUILD_SLACK_BYTES = 128 << 20  # thread stacks, allocator arenas, small buffers the constructors compute
BYTES_PER_VALUE = 16  # a float32 parameter, its initial random draw, and room for non-persistent buffers


def open_regular(path: str | os.PathLike, what: str = "checkpoint"):
    """Open ``path`` for reading only if it (after resolving symlinks) is a regular file; never blocks on a
    named pipe or device (``O_NONBLOCK``), and checks the opened descriptor itself (no race with a swap)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafePathError(f"cannot open {what} {path}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a named pipe" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else \
                "a device or socket"
            raise UnsafePathError(f"{path} is {kind}, not a regular file; refusing to read it as a {what}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def require_regular(path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """Raise :class:`UnsafePathError` unless ``path`` is a regular file; returns it."""
    open_regular(path, what).close()
    return Path(path)


def _address_space_now() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return -1


@contextlib.contextmanager
def memory_budget(extra_bytes: int, label: str) -> Iterator[None]:
    """Allow the process at most ``extra_bytes`` more address space inside the block (Linux only); running
    out of memory inside it, under this limit or a stricter one already set, is a :class:`CheckpointLimitError`."""
    current = _address_space_now()
    previous = resource.getrlimit(resource.RLIMIT_AS) if resource is not None and current >= 0 else None
    if previous is not None:
        soft, hard = previous
        cap = current + extra_bytes if hard == resource.RLIM_INFINITY else min(current + extra_bytes, hard)
        try:
            if soft == resource.RLIM_INFINITY or soft > cap:
                resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            else:
                previous = None  # a stricter limit is already in force: leave it
        except (ValueError, OSError):
            previous = None
    try:
        yield
    except MemoryError as exc:
        raise CheckpointLimitError(f"{label}: the network its attributes describe needs more memory than "
                                   f"the {extra_bytes:,} bytes its tensors justify") from exc
    except RuntimeError as exc:
        if "alloc" not in str(exc).lower():
            raise
        raise CheckpointLimitError(f"{label}: the network its attributes describe needs more memory than "
                                   f"the {extra_bytes:,} bytes its tensors justify") from exc
    finally:
        if previous is not None:
            resource.setrlimit(resource.RLIMIT_AS, previous)


def build_network(build: Callable[[], T], carried_values: int, label: str,
                  mismatch: str = "its contents do not describe a supported network",
                  error: type[CheckpointError] = CorruptCheckpointError) -> T:
    """Run a family constructor under a budget of :data:`BYTES_PER_VALUE` per carried value (+ slack), turning
    whatever a malformed file makes it raise into one ``error`` (default :class:`CorruptCheckpointError`)."""
    budget = BYTES_PER_VALUE * carried_values + BUILD_SLACK_BYTES
    try:
        with memory_budget(budget, label):
            return build()
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError, ZeroDivisionError,
            OverflowError, RecursionError, AssertionError, NotImplementedError, MemoryError) as exc:
        raise error(f"{label}: {mismatch} ({type(exc).__name__}: {str(exc)[:160]})") from exc


def validate_config(config: Any, label: str, where: str = "config") -> None:
    """Types and ranges of a network config (JSON-like): finite numbers, bounded ints, known activations."""
    stack = [(where, config)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise CorruptCheckpointError(f"{label}: {key} has a non-string key")
                stack.append((k, v))
        elif isinstance(value, (list, tuple)):
            if key.endswith("activation"):
                raise CorruptCheckpointError(f"{label}: {key} must be an activation name, not a list")
            stack.extend((key, v) for v in value)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if abs(value) > MAX_CONFIG_INT:
                raise CheckpointLimitError(f"{label}: {key} = {value:,} is out of range (max {MAX_CONFIG_INT:,})")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise CorruptCheckpointError(f"{label}: {key} = {value} is not a finite number")
        elif isinstance(value, str):
            if key.endswith("activation") and value not in ACTIVATIONS:
                raise CorruptCheckpointError(f"{label}: unknown activation {value[:40]!r} in {key}")
        else:
            raise CorruptCheckpointError(f"{label}: {key} holds a {type(value).__name__}, not plain data")
