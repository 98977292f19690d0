"""Whose mask is it: the inpainting-mask conventions of the field, named (torch-free: the CLI checks it early).

* diffusers inpainting pipelines: white = inpaint (the hole);
* deepinv: 1 = observed, so a saved mask is white where observed and black in the holes;
* ganprior: tensors 1 = observed (as deepinv), its ``mask.png`` black = hole.

``--mask-convention NAME`` (restore, score, bench) is a named way to say ``--mask-hole-value``; the two
may be given together only when they agree. In-memory masks: ``ganprior.degradations.masks.observed_from_convention``.
"""

from __future__ import annotations

#: a mask file's convention -> which of its pixels are holes
MASK_CONVENTIONS: dict[str, str] = {"diffusers": "white", "deepinv": "black", "ganprior": "black"}
MASK_CONVENTION_HELP = ("Whose mask file --mask is: diffusers (white = inpaint), deepinv (1 = observed: black = "
                        "hole), ganprior (its mask.png: black = hole). Sets --mask-hole-value.")


class MaskConventionError(ValueError):
    """An unknown mask convention, or one that contradicts the hole value given with it."""


def hole_value_for(convention: str | None, hole_value: str | None = None, *, cli: bool = False) -> str | None:
    """The hole value a mask file is read with, from a named ``convention`` and/or an explicit ``hole_value``.

    Either alone is fine; both must agree (one mask, one rule). ``cli=True`` raises ``click.UsageError``
    spelled with the command-line options instead of :class:`MaskConventionError`.
    """
    if convention is None:
        return hole_value
    if convention not in MASK_CONVENTIONS:
        error = f"{{option}} must be one of {', '.join(MASK_CONVENTIONS)}, got {convention!r}"
    elif hole_value is not None and hole_value != MASK_CONVENTIONS[convention]:
        error = (f"the {convention} convention reads holes as {MASK_CONVENTIONS[convention]} pixels but "
                 f"{{hole}} is {hole_value}; give one of the two")
    else:
        return MASK_CONVENTIONS[convention]
    if cli:
        import click

        raise click.UsageError(error.format(option="--mask-convention", hole="--mask-hole-value"))
    raise MaskConventionError(error.format(option="mask_convention", hole="mask_hole_value"))
