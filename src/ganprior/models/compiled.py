"""``--compile``: ``torch.compile`` on a prior's synthesis network and its discriminator features.

The compiled function replaces the module's ``forward`` (or ``forward_with_features``) as a method
bound to that module, so that:
  * state-dict keys stay the same (no ``_orig_mod.`` wrapper): weight hashes, generator deltas and
    checkpoints are unchanged;
  * ``copy.deepcopy`` (pivotal tuning, DGP tune a copy of the generator) re-binds the method to the
    copy (``copy`` deep-copies bound methods by copying ``__self__``), so the copy renders with its
    own weights. One compiled function is shared per class: parameters are graph inputs
    (dynamo's default of inlining built-in modules), so a copy reuses the compiled code.
"""

from __future__ import annotations

import types
from typing import Callable

import torch
from torch import nn

from ganprior.models.prior import GenerativePrior

_COMPILED: dict[tuple[type, str, str | None, bool | None], Callable] = {}


def compile_method(module: nn.Module, name: str = "forward", mode: str | None = None,
                   dynamic: bool | None = None) -> None:
    """Replace ``module.<name>`` by the compiled class function, bound to ``module``.

    ``dynamic``: ``torch.compile``'s: ``None`` compiles static shapes first and a shape-generic graph
    when a new shape comes; ``False`` keeps every shape static (what a first call gets)."""
    key = (type(module), name, mode, dynamic)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(getattr(type(module), name), mode=mode, dynamic=dynamic)
    setattr(module, name, types.MethodType(_COMPILED[key], module))


def is_compiled(module: nn.Module, name: str = "forward") -> bool:
    bound = module.__dict__.get(name)
    return isinstance(bound, types.MethodType) and bound.__func__ in _COMPILED.values()


def compile_prior(prior: GenerativePrior, mode: str | None = None, dynamic: bool | None = None) -> GenerativePrior:
    """Compile what every method runs at each step: the synthesis network (BigGAN: its whole G,
    which is its synthesis) and the discriminator's feature pass when there is a discriminator."""
    G = getattr(prior, "G", None)
    if not isinstance(G, nn.Module):
        raise TypeError(f"--compile: {type(prior).__name__} has no generator module G to compile")
    synthesis = getattr(G, "synthesis", None)
    compile_method(synthesis if isinstance(synthesis, nn.Module) else G, "forward", mode, dynamic)
    D = getattr(prior, "D", None)
    if isinstance(D, nn.Module):
        compile_method(D, "forward_with_features" if hasattr(D, "forward_with_features") else "forward", mode, dynamic)
    return prior
