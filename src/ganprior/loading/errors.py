"""One error type per failure class of a model file, all under :class:`CheckpointError`.

Messages are short (at most :data:`MAX_MESSAGE` characters), name the file and what is wrong, and never
suggest loading the file unsafely: a hostile file must not be able to flood a terminal or a log through
its error text.
"""

from __future__ import annotations

import pickle

MAX_MESSAGE = 300


def short(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CheckpointError(ValueError):
    """Base of every "this model file cannot be used" error (the CLI prints it as one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(short(message))


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file asks for something a network checkpoint has no reason to contain (code, foreign objects)."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, inconsistent, or not the format its name says."""


class CheckpointLimitError(CorruptCheckpointError):
    """The file declares more than it holds, or more than any real checkpoint needs (nesting, sizes, counts)."""


class IntegrityError(CheckpointError):
    """The file's bytes do not match the digest recorded for it (flipped bits, a swapped file)."""


class UnsafePathError(CheckpointError):
    """The path is not a regular file (pipe, device, directory where a file belongs) or leaves the cache."""


class UnsupportedCheckpointError(CheckpointError):
    """A well-formed checkpoint whose architecture is not one ganprior implements."""
