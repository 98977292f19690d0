"""Resumable training checkpoints: one ``torch.save`` file written atomically, read without pickle code.

A crash or a kill in the middle of a save must never leave a truncated ``ckpt.pt`` behind (the
run would then lose hours), so we write a temporary file in the same folder, fsync it and rename.
Loading uses ``weights_only=True``: a checkpoint holds only tensors, numbers, strings and dicts.

A *compact* checkpoint (:func:`compact_checkpoint`, for the resumable state kept in the repository)
stores the networks in float16 and Adam's second moments in bfloat16, and drops Adam's first
moments when beta1 is 0 (StyleGAN2's setting: they are overwritten by the gradient at every step).
:func:`load_checkpoint` expands it back, so a run resumes from it like from ``ckpt.pt``; the only
change is the rounding of the stored weights (relative 5e-4), far below one Adam step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganprior.atomic import atomic_path


class CheckpointError(RuntimeError):
    """A training checkpoint is missing, unreadable, or does not belong to this kind of run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically write ``state`` (tensors, numbers, strings, lists and dicts of them) to ``path``."""
    path = Path(path)
    with atomic_path(path, fsync=True) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for corrupt/foreign files
        raise CheckpointError(f"{path} is not a readable training checkpoint: {err}") from err
    if not isinstance(state, dict) or "iteration" not in state:
        raise CheckpointError(f"{path} is not a ganprior training checkpoint")
    return expand_checkpoint(state) if state.get("compact") else state


_NETWORKS = ("G", "D", "G_ema")
_OPTIMISERS = ("opt_G", "opt_D")


def _cast(tensors: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in tensors.items()}


def compact_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """A smaller copy of a full training state (see the module docstring); undone by :func:`expand_checkpoint`."""
    if state.get("compact"):
        return state
    out = dict(state, compact=True)
    for name in _NETWORKS:
        out[name] = _cast(state[name], torch.float16)
    for name in _OPTIMISERS:
        opt = state[name]
        if any(group["betas"][0] != 0 for group in opt["param_groups"]):
            raise CheckpointError(f"{name} has Adam beta1 != 0: its first moments cannot be dropped")
        moments = {i: {"step": m["step"], "exp_avg_sq": m["exp_avg_sq"].to(torch.bfloat16)}
                   for i, m in opt["state"].items()}
        out[name] = {"state": moments, "param_groups": opt["param_groups"]}
    return out


def expand_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """The full-precision training state of a compact checkpoint (first moments are zeros)."""
    out = {k: v for k, v in state.items() if k != "compact"}
    for name in _NETWORKS:
        out[name] = _cast(state[name], torch.float32)
    for name in _OPTIMISERS:
        moments = {}
        for i, m in state[name]["state"].items():
            sq = m["exp_avg_sq"].float()
            moments[i] = {"step": m["step"], "exp_avg": torch.zeros_like(sq), "exp_avg_sq": sq}
        out[name] = {"state": moments, "param_groups": state[name]["param_groups"]}
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m ganprior.training.checkpoint SRC DST``: write SRC's compact form to DST (atomically)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("src", type=Path, help="a training checkpoint (e.g. runs/faces32/ckpt.pt)")
    parser.add_argument("dst", type=Path, help="where the compact copy goes (e.g. training_state/faces32.ckpt)")
    args = parser.parse_args(argv)
    state = torch.load(args.src, map_location="cpu", weights_only=True)
    save_checkpoint(compact_checkpoint(state), args.dst)
    print(f"{args.dst}: iteration {state['iteration']}, {args.dst.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
