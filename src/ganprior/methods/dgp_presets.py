"""DGP's fine-tuning schedules: the paper's appendix tables 6-11 and the official scripts' values.

A schedule is a list of stages; each stage says how many iterations it runs, how many leading
generator groups (``prior.blocks()``) it tunes, its loss weights and learning rates. Group 0 is the
layer that takes the latent (BigGAN's ``G.linear``; StyleGAN2's 4x4 block), so the paper's
"blocks num. b" is ``tuned_groups = b + 1`` (decision 3 in ``docs/dgp_decisions.md``); ``None``
tunes every group.

Tables (``table`` option):

* ``official`` (the default): what the released 128 px scripts run, term by term
  (``experiments/imagenet1k_128/{colorization,inpainting,SR/D_biased,SR/MSE_biased}/train.sh`` and, for the
  manipulations, ``experiments/examples/run_{jitter,morphing,category_transfer}.sh`` at
  XingangPan/deep-generative-prior@c503a56). ``code`` is an alias kept for old run files.
* ``paper``: the appendix tables 6-11 where they print a value; where the paper is silent (per-block LR
  decay, how many D features) the scripts' values.
* ``fast``: ``official`` with a fifth of the iterations and 100 candidates, for previews and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ganprior import names
from ganprior.methods.presets import task_kinds

TABLES = ("official", "paper", "fast", "code")
#: old name of ``official``
ALIASES = {"code": "official"}
SCHEDULES = names.DGP_SCHEDULES


class ScheduleError(ValueError):
    """An unknown schedule/table name, or per-stage option lists of different lengths."""


@dataclass(frozen=True)
class Stage:
    """One fine-tuning stage (one column of the paper's tables)."""

    iterations: int
    tuned_groups: int | None  # leading prior.blocks() groups tuned; None = all
    d_weight: float
    mse_weight: float
    g_lr: float
    z_lr: float
    lr_ratio: float = 1.0  # group i gets g_lr * lr_ratio**i (the code's per-depth decay)
    d_features: int | None = None  # last k discriminator features in the loss; None = all (Eq. 3)
    instance_norm: bool = False  # DGP's BN->IN swap (BigGAN only)


#: per-stage option name -> Stage field (the method takes one list per field)
STAGE_OPTIONS = {f"stage_{f.name}": f.name for f in fields(Stage)}


def _stages(**columns: list) -> list[Stage]:
    n = len(columns["iterations"])
    return [Stage(**{k: v[i] for k, v in columns.items()}) for i in range(n)]


# ----- paper (appendix tables 6-11); sample std / selection features come from the code ---------------
_PAPER: dict[str, dict[str, Any]] = {
    "colorize": dict(  # Table 6
        stages=_stages(iterations=[200, 200, 300, 400, 300], tuned_groups=[2, 3, 4, 5, 6], d_weight=[1] * 5,
                       mse_weight=[0] * 5, g_lr=[5e-5] * 4 + [2e-5], z_lr=[2e-3, 1e-3, 5e-4, 5e-5, 2e-5]),
        select_std=0.5),
    "inpaint": dict(  # Table 7 (+ class embedding; IN as the text says)
        stages=_stages(iterations=[400, 200, 200, 200], tuned_groups=[6] * 4, d_weight=[1, 1, 0.1, 0.1],
                       mse_weight=[1, 1, 100, 100], g_lr=[2e-4, 1e-4, 1e-4, 1e-5], z_lr=[1e-3, 1e-4, 1e-4, 1e-5],
                       instance_norm=[True] * 4),
        select_std=0.3, update_embed=True),
    "sr-mse": dict(  # Table 8
        stages=_stages(iterations=[200] * 5, tuned_groups=[2, 3, 4, 5, 6], d_weight=[1, 1, 1, 0.5, 0.1],
                       mse_weight=[1, 1, 1, 50, 100], g_lr=[2e-4, 2e-4, 1e-4, 1e-4, 1e-5],
                       z_lr=[1e-3, 1e-3, 1e-4, 1e-4, 1e-5], instance_norm=[True] * 5),
        select_std=0.3),
    "sr-d": dict(  # Table 9
        stages=_stages(iterations=[200] * 5, tuned_groups=[2, 3, 4, 5, 6], d_weight=[1] * 5, mse_weight=[1] * 5,
                       g_lr=[5e-5, 5e-5, 2e-5, 1e-5, 1e-5], z_lr=[2e-3, 1e-3, 2e-5, 1e-5, 1e-5]),
        select_std=0.3),
    "reconstruct": dict(  # no table: the maintainer's script (issue #9), the only published recipe
        stages=_stages(iterations=[200] * 5, tuned_groups=[2, 3, 4, 5, 6], d_weight=[1, 1, 1, 0.1, 0.1],
                       mse_weight=[10, 10, 10, 100, 100], g_lr=[2e-4, 2e-4, 1e-4, 1e-4, 1e-5],
                       z_lr=[1e-3, 1e-3, 1e-4, 1e-4, 1e-5], instance_norm=[True] * 5),
        select_std=0.3),
    "defence": dict(  # Table 10 ("blocks 6" = every block of the 256 px model)
        stages=_stages(iterations=[100, 900], tuned_groups=[None, None], d_weight=[0, 0], mse_weight=[1, 1],
                       g_lr=[2e-7, 1e-4], z_lr=[5e-2, 1e-4], instance_norm=[True, True]),
        select_std=0.3),
    "manipulation": dict(  # Table 11
        stages=_stages(iterations=[125, 125, 100], tuned_groups=[6] * 3, d_weight=[1] * 3, mse_weight=[0] * 3,
                       g_lr=[2e-7, 2e-5, 2e-6], z_lr=[1e-1, 2e-3, 2e-6]),
        select_std=0.5),
}
# hybrid (sr2+colorize+inpaint, paper Fig. 8b) has no table or script: Table 9's progressive D+MSE recipe
_PAPER["hybrid"] = _PAPER["sr-d"]


def _silent_in_paper() -> dict[str, dict[str, Any]]:
    """What the paper does not print, from the scripts: colorization's per-block LR decay ``--lr_ratio
    0.7 0.7 0.8 0.9 1`` and its 7 D features ``--ftr_num 7`` (colorization/train.sh:13-15); 8 elsewhere."""
    p = _PAPER
    out = {name: dict(stages=[replace(s, d_features=8) for s in v["stages"]]) for name, v in p.items()}
    out["colorize"] = dict(stages=[replace(s, lr_ratio=r, d_features=7)
                                   for s, r in zip(p["colorize"]["stages"], [0.7, 0.7, 0.8, 0.9, 1.0])])
    return out


def _code_overrides() -> dict[str, dict[str, Any]]:
    """The official scripts where they differ from the paper's tables (``dgp_spec.md`` 1.7, 1.8); sources:
    inpainting/train.sh:12-24 (5 x 200, MSE 10 10 10 100 100, D 1 1 1 .1 .1), SR/MSE_biased/train.sh:16
    (MSE 10 10 10 50 100), run_jitter.sh / run_morphing.sh / run_category_transfer.sh (all groups, z lr
    1e-1 1e-2 2e-4, --w_nll 0.2)."""
    p = _PAPER
    return {
        "inpaint": dict(stages=_stages(
            iterations=[200] * 5, tuned_groups=[6] * 5, d_weight=[1, 1, 1, 0.1, 0.1], mse_weight=[10, 10, 10, 100, 100],
            g_lr=[2e-4, 2e-4, 1e-4, 1e-4, 1e-5], z_lr=[1e-3, 1e-3, 1e-4, 1e-4, 1e-5], d_features=[8] * 5,
            instance_norm=[True] * 5)),
        "sr-mse": dict(stages=[replace(s, mse_weight=m, d_features=8)
                               for s, m in zip(p["sr-mse"]["stages"], [10, 10, 10, 50, 100])]),
        "manipulation": dict(stages=[replace(s, tuned_groups=None, z_lr=z, d_features=8)
                                     for s, z in zip(p["manipulation"]["stages"], [1e-1, 1e-2, 2e-4])],
                             latent_weight=0.2),
    }


def schedule_for_task(task: str | None) -> str:
    """The schedule a task string uses by default (``--option schedule=...`` picks another)."""
    kinds = task_kinds(task)
    if not kinds or kinds <= {"reconstruct", "none", "identity"}:
        return "reconstruct"
    if len(kinds) > 1:
        return "hybrid"
    kind = next(iter(kinds))
    if kind in ("colorize", "inpaint"):
        return kind
    return "sr-d"  # SR: perceptual (D-biased) by default; sr-mse for PSNR. Denoise/deblur/JPEG: same recipe.


def resolve_schedule(table: str, schedule: str) -> dict[str, Any]:
    """``{'stages': [...], 'select_std': ..., 'update_embed': ..., 'latent_weight': ...}`` for a table."""
    if table not in TABLES:
        raise ScheduleError(f"unknown DGP table {table!r}; choose one of {', '.join(TABLES)}")
    table = ALIASES.get(table, table)
    if schedule not in SCHEDULES:
        raise ScheduleError(f"unknown DGP schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    values: dict[str, Any] = {"update_embed": False, "latent_weight": 0.02, "select_num": 500,
                              **_PAPER[schedule]}
    values.update(_silent_in_paper()[schedule])
    if table != "paper":  # official, and fast = official shortened
        values.update(_code_overrides().get(schedule, {}))
    if table == "fast":
        values["stages"] = [replace(s, iterations=max(10, s.iterations // 5)) for s in values["stages"]]
        values["select_num"] = 100
    return values


def preset_options(preset: str, task: str | None) -> dict[str, Any]:
    """What ``--preset`` sets for DGP: the table and the task's schedule (stages resolve at run time)."""
    if preset not in TABLES:
        raise ScheduleError(f"unknown DGP preset {preset!r}; choose one of {', '.join(TABLES)}")
    return {"table": preset, "schedule": schedule_for_task(task)}
