"""Class names, so ``--class`` can say ``"Animals & Nature"`` or ``"golden retriever"``, not only 2 or 207.

* the embedded ``emoji32``: its 9 emoji categories (``ganprior.data.emoji.CATEGORIES``, the label order
  it was trained with), attached to the prior as ``prior.class_names`` when it loads;
* ImageNet models (StyleGAN-XL ImageNet, DGP's BigGAN; 1,000 classes): torchvision's ImageNet-1k names,
  shipped inside torchvision (the weights' metadata; nothing is downloaded);
* CIFAR-10 models: the 10 CIFAR-10 names.

:func:`class_index_for` turns one token (an index or a name, case-insensitive) into an index, with
the closest names in the error; ``ganprior.classify.choice.parse_class_option`` takes it as its
``resolve_token``, so one grammar covers ``auto``, ``topk:K``, indices, names and lists.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Sequence

IMAGENET_CLASSES = 1000
CIFAR10_NAMES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                  "truck")


class ClassNameError(ValueError):
    """A ``--class`` token that is neither a valid index nor a known class name."""


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """ImageNet-1k names in index order (torchvision's copy; offline)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def emoji_class_names() -> tuple[str, ...]:
    from ganprior.data.emoji import CATEGORIES

    return tuple(CATEGORIES)


def class_names(prior) -> tuple[str, ...] | None:
    """The names of ``prior``'s classes in index order, or ``None`` when unknown / unconditional."""
    names = getattr(prior, "class_names", None)
    if names is not None:
        return tuple(names)
    c_dim = int(getattr(prior, "c_dim", 0))
    if c_dim == IMAGENET_CLASSES:
        return imagenet_class_names()
    if c_dim == len(CIFAR10_NAMES):
        return CIFAR10_NAMES
    return None


def class_index_for(token: str | int, names: Sequence[str] | None, c_dim: int) -> int:
    """Index of ``token`` (a number, or a class name matched case-insensitively) among ``c_dim`` classes."""
    text = str(token).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < c_dim:
            raise ClassNameError(f"--class {index}: this model has classes 0..{c_dim - 1}")
        return index
    if not names:
        raise ClassNameError(f"--class {text!r}: this model's classes have no names; give an index 0..{c_dim - 1}")
    folded = [n.casefold() for n in names]
    hits = [i for i, n in enumerate(folded) if n == text.casefold()]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ClassNameError(f"--class {text!r} names several classes ({', '.join(map(str, hits))}); give the index")
    close = difflib.get_close_matches(text.casefold(), folded, n=5, cutoff=0.6)
    close += [n for n in folded if text.casefold() in n and n not in close][:5 - len(close)]
    hint = ("closest: " + ", ".join(f"{names[folded.index(n)]!r} ({folded.index(n)})" for n in close)
            if close else f"run `ganprior models` or give an index 0..{c_dim - 1}")
    raise ClassNameError(f"--class {text!r} is not a class of this model; {hint}")


def with_class_names(requested, prior):
    """``requested`` (a ``--class`` value) with class names turned into indices: a given class or list
    becomes what methods take (an index or ``ClassCandidates``); ``auto``/``topk:K`` and non-strings pass."""
    if not isinstance(requested, str) or not getattr(prior, "c_dim", 0):
        return requested
    from ganprior.classify.choice import parse_class_option

    names = class_names(prior)
    request = parse_class_option(requested, resolve_token=lambda token: class_index_for(token, names, prior.c_dim))
    return request.given() if request.kind == "given" else requested
