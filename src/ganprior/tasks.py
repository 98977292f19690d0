"""The one task vocabulary (torch-free): canonical task names, their accepted spellings, and the kinds a
composed task string contains.

Parsing (``degradations.parse``), presets (``methods.presets``, ``methods.dgp_presets``), the bench, the
command line and the UI all ask this module what a task string means, so an alias (``inpainting``,
``colorization``, ``grey``) always selects the same settings as its canonical name.
"""

from __future__ import annotations

import re

#: canonical task -> accepted spellings
TASK_ALIASES: dict[str, tuple[str, ...]] = {
    "sr": ("sr", "superres", "super-resolution"),
    "colorize": ("colorize", "colorization", "gray", "grey"),
    "inpaint": ("inpaint", "inpainting"),
    "denoise": ("denoise", "denoising", "noise"),
    "blur": ("blur", "deblur"),
    "jpeg": ("jpeg", "dejpeg"),
}
#: tasks whose parameter may follow the name ("sr4", "jpeg30", "denoise0.1", "blur2")
NUMBERED = {"sr": "<factor>", "denoise": "<sigma>", "blur": "<sigma>", "jpeg": "<quality>"}
#: task strings that observe the image as it is (no operator)
IDENTITY_TASKS = ("", "none", "identity", "reconstruct")

_TOKEN = re.compile(r"([a-z-]+?)(\d+(?:\.\d+)?|\.\d+)?")
#: a degradation's own name may carry its kernel after the parameter ("sr4-lanczos", "sr4-dgp-lanczos2")
_NAMED = re.compile(r"([a-z-]+?)(\d+(?:\.\d+)?|\.\d+)(-[a-z0-9-]+)")


class UnknownTaskError(ValueError):
    """A task string names an operator this vocabulary does not know."""


def known_tasks() -> list[str]:
    return [t + NUMBERED.get(t, "") for t in TASK_ALIASES] + ["reconstruct"]


def canonical_token(token: str) -> tuple[str, float | None]:
    """``"sr4"`` -> ``("sr", 4.0)``, ``"grey"`` -> ``("colorize", None)``; unknown words raise
    :class:`UnknownTaskError` listing the known ones."""
    match = _TOKEN.fullmatch(token.strip().lower())
    if match:
        word, number = match.group(1), match.group(2)
        for task, spellings in TASK_ALIASES.items():
            if word in spellings and (number is None or task in NUMBERED):
                return task, None if number is None else float(number)
    raise UnknownTaskError(f"unknown task {token!r}; known tasks: {', '.join(known_tasks())} (join with '+')")


def _kind(token: str) -> str:
    named = _NAMED.fullmatch(token)
    return canonical_token(named.group(1) + named.group(2) if named else token)[0]


def task_kinds(task: str | None) -> set[str]:
    """The canonical kinds in a task string: ``'sr4+Colorization+inpainting'`` -> ``{'sr', 'colorize',
    'inpaint'}``; identity tasks give the empty set; unknown words raise :class:`UnknownTaskError`."""
    if task is None or str(task).strip().lower() in IDENTITY_TASKS:
        return set()
    return {_kind(part.strip().lower()) for part in str(task).split("+") if part.strip()}


def has_kind(task: str | None, kind: str) -> bool:
    """Whether ``task`` contains the canonical ``kind`` (any spelling of it)."""
    if kind not in TASK_ALIASES:
        raise UnknownTaskError(f"{kind!r} is not a canonical task; known: {', '.join(TASK_ALIASES)}")
    return kind in task_kinds(task)
