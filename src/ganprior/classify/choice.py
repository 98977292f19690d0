"""What the user asked for with ``--class`` and what a method receives.

``--class`` takes ``auto`` (an ImageNet classifier's top-1), ``topk:K`` (its K most likely classes
with their softmax weights), an index, or a comma list of indices (the centroid search is restricted
to them). Single tokens go through ``resolve_token``, so a name parser (class names) plugs in
without a second grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


class ClassOptionError(ValueError):
    """A ``--class`` value that cannot be parsed."""


@dataclass(frozen=True)
class ClassCandidates:
    """A few classes with weights (summing to 1): a classifier's top-K, or a user's list (uniform).

    Methods search or sample among these instead of all of the model's classes.
    """

    indices: tuple[int, ...]
    weights: tuple[float, ...]
    source: str  # 'deit-topk' | 'given-list'

    def __post_init__(self) -> None:
        if not self.indices or len(self.indices) != len(self.weights):
            raise ValueError("class candidates need as many weights as indices (at least one)")
        if len(set(self.indices)) != len(self.indices):
            raise ValueError(f"class candidates repeat a class: {list(self.indices)}")

    @classmethod
    def uniform(cls, indices: Sequence[int], source: str = "given-list") -> "ClassCandidates":
        return cls(tuple(int(i) for i in indices), tuple(1.0 / len(indices) for _ in indices), source)

    def soft_row(self, c_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[1, c_dim]`` soft class vector: the weights at their classes, zero elsewhere."""
        row = torch.zeros(1, c_dim, device=device)
        row[0, list(self.indices)] = torch.tensor(self.weights, device=device)
        return row

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` class indices drawn from the weights (StyleGAN-XL draws its w_avg classes this way)."""
        picks = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        return torch.tensor(self.indices)[picks]

    def describe(self) -> dict[str, float]:
        return {str(i): float(w) for i, w in zip(self.indices, self.weights)}


@dataclass(frozen=True)
class ClassRequest:
    """A parsed ``--class``: ``kind`` is 'auto', 'topk' (with ``k``) or 'given' (with ``indices``)."""

    kind: str
    k: int = 1
    indices: tuple[int, ...] = ()

    @property
    def needs_classifier(self) -> bool:
        return self.kind in ("auto", "topk")

    def given(self) -> int | ClassCandidates:
        """The class a method gets when no classifier is involved: one index or a restricted list."""
        if self.kind != "given":
            raise ValueError(f"--class {self.kind} needs the classifier")
        return self.indices[0] if len(self.indices) == 1 else ClassCandidates.uniform(self.indices)


def parse_class_option(text: str | int, resolve_token: Callable[[str], int] | None = None) -> ClassRequest:
    """``auto`` | ``topk:K`` | ``INDEX`` | ``I,J,...``; other tokens go to ``resolve_token`` (e.g. names)."""
    if isinstance(text, int):
        return ClassRequest("given", indices=(text,))
    value = str(text).strip()
    if value.lower() == "auto":
        return ClassRequest("auto")
    if value.lower().startswith("topk:"):
        k = value.split(":", 1)[1]
        if not k.isdigit() or int(k) < 1:
            raise ClassOptionError(f"--class {value!r}: write topk:K with a whole number K >= 1, e.g. topk:5")
        return ClassRequest("topk", k=int(k))
    tokens = [t.strip() for t in value.split(",")]
    if not value or any(not t for t in tokens):
        raise ClassOptionError(f"--class {value!r}: give auto, topk:K, a class index or a comma list of them")
    indices = []
    for token in tokens:
        if token.lstrip("-").isdigit():
            indices.append(int(token))
        elif resolve_token is not None:
            indices.append(int(resolve_token(token)))
        else:
            raise ClassOptionError(f"--class {value!r}: {token!r} is not a class index (or auto, topk:K)")
    if len(set(indices)) != len(indices):
        raise ClassOptionError(f"--class {value!r} names a class twice")
    return ClassRequest("given", indices=tuple(indices))
