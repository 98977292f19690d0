"""Restore held-out emoji with ganprior's CRI through deepinv: a deepinv physics in, deepinv's own PSNR out.

    python examples/deepinv_restore.py                 # x2 bicubic SR of 3 held-out emoji, 30 steps per stage
    python examples/deepinv_restore.py --task inpaint --steps 100 --images 6

Offline and on a CPU: the embedded emoji32 model and its held-out split ship with ganprior. The
evaluation is what deepinv's benchmark runner does with a solver (``deepinv_bench``'s objectives call
``deepinv.test(model, DataLoader(dataset), physics, online_measurements=True, metrics=[PSNR(), ...])``),
here on a small local set; the linear reconstruction ``A_dagger(y)`` is scored alongside (deepinv's
"no learning" baseline). Needs the extra: ``pip install 'ganprior[deepinv]'``.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

TASKS = ("sr2", "inpaint", "colorize")


class Images(Dataset):
    """Images one by one, as deepinv's datasets give them (``x`` alone: measurements are made online)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def held_out_emoji(count: int) -> torch.Tensor:
    """``count`` held-out emoji (never seen in training) as deepinv images: [N, 3, 32, 32] in [0, 1]."""
    from ganprior.data.emoji import load_emoji_test

    images = load_emoji_test(32).images[:count]
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def make_physics(task: str) -> Any:
    """The deepinv operator for ``task`` (deepinv's conventions: [0, 1] images, mask 1 = observed)."""
    import deepinv as dinv

    if task == "sr2":
        return dinv.physics.Downsampling(filter="bicubic", factor=2, padding="circular", img_size=(3, 32, 32))
    if task == "inpaint":
        return dinv.physics.Inpainting(img_size=(3, 32, 32), mask=0.5, pixelwise=True,
                                       rng=torch.Generator().manual_seed(0))
    return dinv.physics.Decolorize()


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Restore, score with ``deepinv.loss.metric.PSNR`` and print one line per method; returns the mean PSNRs."""
    import deepinv as dinv

    from ganprior.deepinv import GANPrior

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=TASKS, default="sr2")
    parser.add_argument("--method", default="cri")
    parser.add_argument("--steps", type=int, default=30, help="cap on every optimisation stage")
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args(argv)

    x = held_out_emoji(args.images)
    physics = make_physics(args.task)
    model = GANPrior(args.method, "emoji32", steps=args.steps)
    with warnings.catch_warnings():  # deepinv's deprecation notes on the physics' device attribute
        warnings.simplefilter("ignore")
        results = dinv.test(model, DataLoader(Images(x), batch_size=args.images), physics,
                            metrics=[dinv.loss.metric.PSNR()], online_measurements=True, device="cpu",
                            compare_no_learning=True, no_learning_method="A_dagger", verbose=False,
                            show_progress_bar=False)
    scores = {"ganprior": float(results["PSNR"]), "A_dagger": float(results["PSNR no learning"])}
    print(f"{args.task}: {len(x)} held-out emoji, deepinv PSNR (dB): GANPrior({args.method}, steps={args.steps}) "
          f"{scores['ganprior']:.2f}, A_dagger {scores['A_dagger']:.2f}")
    return scores


if __name__ == "__main__":
    main()
