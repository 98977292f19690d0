"""Paired comparison of two benchmark columns on the same images: a mean difference alone hides
whether a method wins consistently or by one outlier, and whether the sample resolves it at all."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from ganprior.bench.scoring import MEASURES


@dataclass(frozen=True)
class Paired:
    """``a`` minus ``b`` over the images both have, for one task and measure."""

    task: str
    measure: str
    a: str
    b: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sem: float  # standard error of the mean difference
    a_better: int  # images on which ``a`` is strictly better (in the measure's own direction)
    p_value: float | None  # two-sided Wilcoxon signed-rank; None below 6 pairs or when every difference is 0

    @property
    def resolved(self) -> bool:
        """The difference is told apart from noise at the 5 % level."""
        return self.p_value is not None and self.p_value < 0.05


def paired(rows: list[dict], task: str, measure: str, a: str, b: str) -> Paired:
    """Compare columns ``a`` and ``b`` of ``rows`` (results.json's per-cell records) on ``task``."""
    values = {col: {r["image"]: r["values"].get(measure) for r in rows if r["task"] == task and r["column"] == col}
              for col in (a, b)}
    ids = sorted(i for i, v in values[a].items() if v is not None and values[b].get(i) is not None)
    if not ids:
        raise ValueError(f"no image has both {a!r} and {b!r} for {measure} on {task!r}")
    xa = [values[a][i] for i in ids]
    xb = [values[b][i] for i in ids]
    diffs = [p - q for p, q in zip(xa, xb)]
    n = len(diffs)
    mean = sum(diffs) / n
    sem = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else math.nan
    sign = 1 if MEASURES[measure].higher_is_better else -1
    p_value = None
    if n >= 6 and any(diffs):
        p_value = float(stats.wilcoxon(xa, xb, zero_method="zsplit").pvalue)
    return Paired(task, measure, a, b, n, sum(xa) / n, sum(xb) / n, mean, sem, sum(sign * d > 0 for d in diffs),
                  p_value)


def render_paired(comparisons: list[Paired]) -> str:
    """Markdown table, one comparison per row."""
    lines = ["| Task | Measure | A vs B | n | mean A | mean B | A − B (± s.e.) | A better on | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        p = "—" if c.p_value is None else f"{c.p_value:.3g}" + (" *" if c.resolved else "")
        lines.append(f"| {c.task} | {MEASURES[c.measure].label} | {c.a} vs {c.b} | {c.n} | {c.mean_a:.4f} | "
                     f"{c.mean_b:.4f} | {c.mean_diff:+.4f} ± {c.sem:.4f} | {c.a_better}/{c.n} | {p} |")
    lines.append("\n`*`: p < 0.05 (two-sided Wilcoxon signed-rank over the paired images).")
    return "\n".join(lines)
