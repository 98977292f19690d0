"""``--option key=value``: any method option from the command line, checked against the method's defaults.

Values are read as JSON (``10``, ``0.5``, ``true``, ``null``, ``[false, false]``, ``"text"``), and a
bare word that is not JSON is taken as a string (``perceptual=mse``). The type must fit the default:
an integer option takes whole numbers, a float option any number, a flag ``true``/``false``, a text
option text; options whose default is ``None`` (DGP's per-stage lists, preset-filled values) take any
JSON value and are checked by the method itself.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Sequence

from ganprior.methods.base import get_method_class


class MethodOptionError(ValueError):
    """A ``--option`` that names no option of the method or has a value of the wrong kind."""


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _fits(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    return {int: "a whole number", float: "a number", str: "text", list: "a JSON list"}.get(
        type(default), type(default).__name__)


def parse_method_options(pairs: Sequence[str], method: str) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}`` for ``method``; errors name ``--option``."""
    defaults = get_method_class(method).defaults
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MethodOptionError(f"--option {pair!r}: write it as KEY=VALUE (e.g. --option steps=200)")
        if key not in defaults:
            close = difflib.get_close_matches(key, defaults, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise MethodOptionError(f"--option {key}: method {method!r} has no such option; {hint}"
                                    f"known: {', '.join(sorted(defaults))}")
        value = _value(text.strip())
        default = defaults[key]
        if not _fits(value, default):
            raise MethodOptionError(f"--option {key}={text}: {method!r} expects {_kind(default)} "
                                    f"(default {json.dumps(default)})")
        options[key] = float(value) if isinstance(default, float) else value
    return options
