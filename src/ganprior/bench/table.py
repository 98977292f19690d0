"""Markdown tables laid out like the papers': task × measure rows, one column per method.

The best value of each row is bold (highest for ↑ measures, lowest for ↓; ties are all bold);
``n/a`` marks a measure that could not be computed here (the reason is in a footnote), ``—`` a
column the task does not have. With a protocol, a second table puts the paper's numbers next to ours.
"""

from __future__ import annotations

from ganprior.bench.baselines import BASELINES
from ganprior.bench.protocols import Protocol
from ganprior.bench.scoring import MEASURES

COLUMN_NAMES = {"input": "Input", "bicubic": "Bicubic", "telea": "Telea", "cri": "CRI", "pti": "PTI",
                "wplus": "W+", "w": "W", "pulse": "PULSE", "dgp": "DGP", "dgp-mse": "DGP (MSE)",
                "cri-noreg": "CRI w/o reg"}


def column_name(column: str) -> str:
    return COLUMN_NAMES.get(column, column)


def format_value(measure: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    digits = MEASURES[measure].digits if measure in MEASURES else 4
    return f"{value:.{digits}f}"


def best_columns(values: dict[str, float | None], higher_is_better: bool) -> set[str]:
    """Columns holding the best value of a row, compared as printed (so displayed ties all win)."""
    numbers = {c: v for c, v in values.items() if v is not None}
    if not numbers:
        return set()
    best = (max if higher_is_better else min)(numbers.values())
    return {c for c, v in numbers.items() if v == best}


def _row_values(aggregates: dict, columns: list[str], measure: str) -> dict[str, float | None]:
    digits = MEASURES[measure].digits
    values = {}
    for column in columns:
        mean = aggregates.get(column, {}).get(measure, {}).get("mean")
        values[column] = None if mean is None else round(mean, digits)
    return values


def render_table(results: dict) -> str:
    """The main table: ``| Task | Measure | column... |`` with the best value of every row in bold."""
    seen = list(dict.fromkeys(c for cols in results["columns"].values() for c in cols))
    columns = [c for c in BASELINES if c in seen] + [c for c in seen if c not in BASELINES]
    lines = ["| Task | Measure | " + " | ".join(column_name(c) for c in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    footnotes: dict[str, int] = {}
    for task in results["tasks"]:
        name = task["name"]
        task_columns = results["columns"].get(name, [])
        aggregates = results["aggregates"].get(name, {})
        reasons = results.get("unavailable", {}).get(name, {})
        for i, measure in enumerate(task["measures"]):
            info = MEASURES[measure]
            values = _row_values(aggregates, task_columns, measure)
            best = best_columns(values, info.higher_is_better)
            cells = []
            for column in columns:
                if column not in task_columns:
                    cells.append("—")
                    continue
                text = format_value(measure, values[column])
                if values[column] is None and measure in reasons:
                    mark = footnotes.setdefault(f"{info.label}: {reasons[measure]}", len(footnotes) + 1)
                    text = f"n/a[^{mark}]"
                cells.append(f"**{text}**" if column in best else text)
            label = name if i == 0 else ""
            lines.append(f"| {label} | {info.label} {info.arrow} | " + " | ".join(cells) + " |")
    if footnotes:
        lines.append("")
        lines += [f"[^{n}]: {text}" for text, n in footnotes.items()]
    return "\n".join(lines) + "\n"


def paper_comparison(results: dict, protocol: Protocol) -> list[dict]:
    """``[{table, task, measure, method, paper, ours, delta}]`` for every paper cell this run also has
    (measures we cannot compute, such as ResNet-50 accuracy, are left out)."""
    rows = []
    for table in protocol.tables:
        for task, by_measure in table.values.items():
            aggregates = results["aggregates"].get(task, {})
            for measure, by_method in by_measure.items():
                for method in by_method:
                    if method not in aggregates or measure not in MEASURES:
                        continue
                    paper = table.value(task, measure, method)
                    ours = aggregates[method].get(measure, {}).get("mean")
                    rows.append({"table": table.ref, "task": task, "measure": measure, "method": method,
                                 "paper": paper, "ours": ours,
                                 "delta": None if ours is None or paper is None else ours - paper})
    return rows


def render_comparison(rows: list[dict]) -> str:
    if not rows:
        return "No paper numbers match the tasks and methods of this run.\n"
    lines = ["| Paper table | Task | Measure | Method | Paper | Ours | Ours − paper |",
             "|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        info = MEASURES.get(r["measure"])
        label = f"{info.label} {info.arrow}" if info else r["measure"]
        delta = "n/a" if r["delta"] is None else f"{r['delta']:+.{info.digits if info else 4}f}"
        lines.append(f"| {r['table']} | {r['task']} | {label} | {column_name(r['method'])} | "
                     f"{format_value(r['measure'], r['paper'])} | {format_value(r['measure'], r['ours'])} | {delta} |")
    return "\n".join(lines) + "\n"


def render_paper_tables(protocol: Protocol) -> str:
    """The protocol's published numbers as printed in the paper (a row keeps its longest decimals, so
    trailing zeros the float dropped come back: 45.9 -> 45.90 next to 166.24)."""
    parts = []
    for table in protocol.tables:
        methods = list(dict.fromkeys(m for by_measure in table.values.values()
                                     for by_method in by_measure.values() for m in by_method))
        head = [table.columns.get(m, m) + (f" (`{m}`)" if m in table.columns else "") for m in methods]
        lines = [f"**{table.ref}**: {table.caption}", "", "| Task | Measure | " + " | ".join(head) + " |",
                 "|---|---|" + "---:|" * len(methods)]
        for task, by_measure in table.values.items():
            for i, (measure, by_method) in enumerate(by_measure.items()):
                info = MEASURES.get(measure)
                label = f"{info.label} {info.arrow}" if info else measure
                digits = max(len(repr(v).partition(".")[2]) for v in by_method.values())
                cells = [f"{by_method[m]:.{digits}f}" if m in by_method else "" for m in methods]
                lines.append(f"| {task if i == 0 else ''} | {label} | " + " | ".join(cells) + " |")
        if table.scale:
            lines += ["", "Printed units → ours: " + ", ".join(f"{k} × {v:g}" for k, v in table.scale.items())]
        if table.note:
            lines += ["", f"Note: {table.note}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_report(results: dict, protocol: Protocol | None = None) -> str:
    """table.md: the run's settings in one line, the main table and, with a protocol, paper vs ours."""
    model = results["model"]
    head = (f"# Benchmark: {model['name']} ({model['family']}, {model['resolution']} px), "
            f"{len(results['images'])} images, seed {results['seed']}")
    if protocol is not None:
        head += f", protocol `{protocol.name}`"
    parts = [head, "", "Mean over images (FID/KID over the set); best per row in **bold**.", "", render_table(results)]
    shown = dict.fromkeys(m for task in results["tasks"] for m in task["measures"] if MEASURES[m].note)
    parts += [f"{MEASURES[m].label}: {MEASURES[m].note}\n" for m in shown]
    skipped = [f"- {column_name(c)} ({task}): {reason}" for task, by in results.get("skipped", {}).items()
               for c, reason in by.items()]
    if skipped:
        parts += ["Skipped baselines:", "", *skipped, ""]
    if protocol is not None:
        parts += [f"## Paper vs ours ({protocol.paper})", "", render_comparison(results.get("paper_comparison", []))]
    return "\n".join(parts)
