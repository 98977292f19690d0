"""``run_benchmark``: methods × tasks × images -> results.json, table.md, per_image.csv, contact sheets.

For every (task, image) the degraded input is made deterministically from the seed and the image
id, then every column runs on it: the classical baselines (``baselines.py``) and the GAN-prior
methods (through :func:`ganprior.restore`, the path users take). Each finished (task, column,
image) cell is written at once and atomically (``cells/<task>/<column>/<image>.png`` + ``.json``,
the JSON last), so an interrupted run continues where it stopped: a cell whose JSON exists with
the same fingerprint (model, task, column options, seed, image content) is never recomputed.
Set measures (FID, KID) and all reports are rebuilt from the stored cells at the end.

Output folder::

    results.json   config, seed, versions, per-image rows, aggregates (mean ± std, n), set
                   measures, unavailable measures with reasons, paper-vs-ours rows
    table.md       the paper-style table (task × measure × column, best in bold)
    per_image.csv  one row per (task, image, column)
    clean/ inputs/<task>/ cells/<task>/<column>/   images (8-bit PNG)
    sheets/<task>-NN.png   rows = images; columns = degraded | baselines | methods | clean
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import platform
import statistics
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ganprior.atomic import atomic_write_text
from ganprior.image_files import CLI_NAMES, check_mask_coverage, is_mask_file, observed_from_file
from ganprior.bench.baselines import BaselineUnavailable, applicable_baselines, run_baseline
from ganprior.bench.protocols import Protocol, TaskSpec, Variant, get_protocol
from ganprior.bench.scoring import MEASURES, ImageScorer, check_measures, default_measures, set_scores
from ganprior.bench.sources import BenchImage, load_images

RESULTS_FILE = "results.json"
TABLE_FILE = "table.md"
CSV_FILE = "per_image.csv"


class BenchError(ValueError):
    """The benchmark configuration cannot run (unknown method, impossible task, unusable option)."""


@dataclass
class BenchConfig:
    """Everything that defines a benchmark run (``ganprior bench --help`` explains each field)."""

    methods: tuple[str, ...] = ("cri",)
    tasks: tuple[TaskSpec, ...] = (TaskSpec("colorize", "colorize"),)
    images: str = "emoji-test"
    out: str = "bench-out"
    model: str | None = None
    seed: int = 0
    steps: int | None = None
    preset: str = "fast"
    limit: int | None = None
    protocol: str | None = None
    perceptual: str | None = None
    baselines: bool = True
    device: str = "cpu"
    images_root: str | None = None
    resize_kernel: str = "bicubic"
    lpips_net: str = "alex"
    fid_min_images: int = 50
    fid_reference: str | None = None
    use_labels: bool = True
    sheet_rows: int = 16
    #: DGP only: carry Adam's state from one image to the next within a (column, task), as DGP's dataset
    #: driver does (trainer.py:94-99). Off by default: a score would depend on the order of the images and on
    #: which cells were already stored
    carry_adam_state: bool = False
    #: per-method option overrides passed to ``restore(options=...)``
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per-task overrides on top of those: task name -> method -> options (e.g. DGP's per-stage lists,
    #: whose length depends on the task's schedule)
    task_options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: extra method columns: name -> Variant(method, options, tasks)
    variants: dict[str, Variant] = field(default_factory=dict)

    @classmethod
    def from_protocol(cls, name: str, **overrides: Any) -> "BenchConfig":
        """The protocol's settings; ``overrides`` that are not None replace them."""
        protocol = get_protocol(name)
        base = cls(methods=protocol.methods, tasks=protocol.tasks, model=protocol.model, preset=protocol.preset,
                   protocol=protocol.name, resize_kernel=protocol.resize_kernel, lpips_net=protocol.lpips_net,
                   method_options={k: dict(v) for k, v in protocol.method_options.items()},
                   variants=dict(protocol.variants))
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Cell:
    task: str
    column: str
    image: str


# ----- persistence ---------------------------------------------------------------------------
def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


class CellStore:
    """One PNG + one JSON per finished cell; the JSON is written last, so it marks completion."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _stem(self, cell: Cell) -> Path:
        return self.root / "cells" / cell.task / cell.column / cell.image

    def image_path(self, cell: Cell) -> Path:
        return self._stem(cell).with_suffix(".png")

    def load(self, cell: Cell, fingerprint: str) -> dict | None:
        """The stored record when the cell is finished with this fingerprint, else None."""
        path = self._stem(cell).with_suffix(".json")
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("fingerprint") != fingerprint or not self.image_path(cell).is_file():
            return None
        return record

    def save(self, cell: Cell, image: torch.Tensor, record: dict) -> None:
        from ganprior.images import save_image

        save_image(image, self.image_path(cell))
        atomic_write_text(self._stem(cell).with_suffix(".json"), _json_text(record))


# ----- one (task, image) --------------------------------------------------------------------
def image_seed(seed: int, image_id: str) -> int:
    """A per-image seed that depends only on the run seed and the image id (not on the order)."""
    return zlib.crc32(f"{seed}:{image_id}".encode()) & 0x7FFFFFFF


@dataclass
class Degraded:
    degradation: torch.nn.Module
    observation: torch.Tensor
    mask: torch.Tensor | None  # the inpainting mask at the size reaching the inpainting step
    hole: torch.Tensor | None  # 1 on missing pixels at the clean size


def make_degraded(spec: TaskSpec, clean: torch.Tensor, seed: int) -> Degraded:
    """The degradation of ``spec`` and its (seeded) observation of ``clean``."""
    from ganprior.degradations import Inpainting, parse_task

    size = tuple(clean.shape[-2:])
    # colorize_fusion 'lab-luma': a perfect restoration scores ~140 dB as with DGP's ground-truth L*
    # (models/dgp.py:327-334); the blind 'lab' fusion capped it at 23.8-54.8 dB (issue 22, item 11)
    degradation = parse_task(spec.task, mask=spec.mask, image_size=size, seed=seed, sr_kernel=spec.sr_kernel,
                             mask_hole_value=spec.mask_hole_value, colorize_fusion="lab-luma")
    with torch.no_grad():
        observation = degradation.degrade(clean, generator=torch.Generator().manual_seed(seed))
    masks = [op.mask for op in degradation.ops if isinstance(op, Inpainting)]
    missing = 1 - degradation.valid_mask(size)
    hole = F.interpolate(missing, size=size, mode="nearest-exact") if float(missing.sum()) > 0 else None
    return Degraded(degradation, observation, masks[0] if masks else None, hole)


def _method_and_options(column: str, config: BenchConfig, task: str | None = None) -> tuple[str, dict[str, Any]]:
    """The registered method behind a column and the options it runs with (on ``task`` when given)."""
    variant = config.variants.get(column)
    method = column if variant is None else variant.method
    per_task = config.task_options.get(task, {}) if task is not None else {}
    options = {**config.method_options.get(method, {}), **per_task.get(method, {})}
    if variant is not None:
        options.update(variant.options)
    return method, options


def _restore_with_method(cell: Cell, spec: TaskSpec, degraded: Degraded, prior, config: BenchConfig,
                         class_index: int | None, seed: int) -> tuple[torch.Tensor, dict]:
    from ganprior.api import restore

    try:
        result = restore(**restore_arguments(cell, spec, degraded, prior, config, class_index, seed))
    except (ValueError, RuntimeError) as err:  # finished cells stay stored: fix the cause and re-run
        raise cell_error(cell, err) from err
    return restored_and_info(result, spec)


def cell_error(cell: Cell, err: Exception) -> BenchError:
    return BenchError(f"{cell.column} failed on {cell.task} / {cell.image}: {type(err).__name__}: {err}")


def restore_arguments(cell: Cell, spec: TaskSpec, degraded: Degraded, prior, config: BenchConfig,
                      class_index: int | None, seed: int) -> dict[str, Any]:
    """``restore``'s keyword arguments for a method cell (the observation is ``image=``)."""
    from ganprior.methods import get_method_class

    method, options = _method_and_options(cell.column, config, spec.name)
    # --perceptual concerns the methods that have a perceptual term (DGP uses its discriminator).
    perceptual = config.perceptual if "perceptual" in get_method_class(method).defaults else None
    # Inpainting goes as a task string so restore() can fit the mask; otherwise the exact operator.
    task = spec.task if degraded.mask is not None else degraded.degradation
    if config.carry_adam_state and method == "dgp":
        options = {**options, "adam_carry": f"bench:{config.out}:{cell.column}:{spec.name}"}
    return dict(image=degraded.observation, value_range=(-1.0, 1.0), task=task, method=method, model=prior,
                mask=degraded.mask, class_index=class_index, seed=seed, steps=config.steps, preset=config.preset,
                perceptual=perceptual, progress=False, options=options)


def restored_and_info(result, spec: TaskSpec) -> tuple[torch.Tensor, dict]:
    """The image a method cell is scored on, and what its record keeps of the run."""
    info = {"class_index": result.class_index, "class_source": result.result.class_source,
            "perceptual": result.config.get("perceptual"), "stopped": result.stopped,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            # the method's own diagnostics (CRI: centroid vs w_avg start loss, offset norm), for ablations
            "extras": {k: v for k, v in result.result.extras.items() if isinstance(v, (int, float, str))}}
    scored = result.generator_output if spec.score == "raw" else result.image
    return scored.detach().cpu(), info


# ----- the run --------------------------------------------------------------------------------
def _validate(config: BenchConfig) -> None:
    from ganprior.degradations import DegradationError, parse_task
    from ganprior.methods import PRESETS, available_methods

    if config.preset not in PRESETS:
        raise BenchError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = [m for m in config.methods if _method_and_options(m, config)[0] not in available_methods()]
    if unknown:
        raise BenchError(f"method(s) {', '.join(unknown)} not available here; available: "
                         f"{', '.join(available_methods())}")
    if not config.tasks:
        raise BenchError("no tasks given")
    names = [t.name for t in config.tasks]
    if len(set(names)) != len(names):
        raise BenchError(f"task names must be distinct, got {names}")
    for spec in config.tasks:
        check_measures(spec.measures)
        try:
            mask = spec.mask
            if mask is not None and is_mask_file(mask):  # its size is checked against each image later
                observed = observed_from_file(mask, spec.mask_hole_value, names=CLI_NAMES)
                check_mask_coverage(observed, f"--mask {mask}", "--mask-hole-value")
                mask = "center"
            parse_task(spec.task, mask=mask, image_size=(96, 96), sr_kernel=spec.sr_kernel)
        except (DegradationError, ValueError) as err:
            raise BenchError(f"task {spec.name!r}: {err}") from err
        if spec.score not in ("fused", "raw"):
            raise BenchError(f"task {spec.name!r}: score must be 'fused' or 'raw', got {spec.score!r}")
        if spec.mask is not None and spec.sr_kernel != "bicubic":
            raise BenchError(f"task {spec.name!r}: inpainting combined with SR kernel {spec.sr_kernel!r} is not "
                             "supported by restore(); use the bicubic kernel")
    if config.steps is not None and config.steps < 0:
        raise BenchError(f"--steps must be >= 0, got {config.steps}")
    if stray := sorted(set(config.task_options) - set(names)):
        raise BenchError(f"task_options name task(s) {', '.join(stray)} that the run does not have ({names})")


def _measures(spec: TaskSpec) -> tuple[str, ...]:
    return spec.measures or default_measures(spec.task)


def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def weights_digest(module: torch.nn.Module) -> str:
    """Content hash of a module's weights and buffers, so cells of other weights are never reused."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def _model_info(prior, config: BenchConfig, label: str | None) -> dict:
    feature_net = getattr(prior, "feature_net", None)
    return {"name": label or config.model or "default", "family": getattr(prior, "family", None),
            "resolution": int(prior.resolution), "c_dim": int(prior.c_dim),
            "parameters": int(sum(p.numel() for p in prior.parameters())), "weights": weights_digest(prior),
            "feature_net": weights_digest(feature_net) if isinstance(feature_net, torch.nn.Module) else None}


def _versions() -> dict:
    import numpy

    import ganprior

    return {"ganprior": ganprior.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N`` (``--shard`` of the CLI and the build script)."""
    index, _, count = text.strip().partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise BenchError(f"expected a shard K/N with 0 <= K < N, such as 0/2; got {text!r}")
    return int(index), int(count)


def run_benchmark(config: BenchConfig, *, prior=None, model_label: str | None = None, progress: bool = True,
                  after_cell: Callable[[Cell], None] | None = None, shard: tuple[int, int] = (0, 1),
                  batch_size: int = 1) -> dict:
    """Run (or resume) the benchmark described by ``config``; returns the results dictionary.

    ``prior`` skips loading ``config.model`` (``model_label`` then names it in the reports);
    ``after_cell`` is called after each newly computed cell (progress hooks, tests).
    ``shard=(k, n)`` computes only every n-th (task, image) pair starting at k, so n processes or machines
    can share one output folder; cells do not depend on the shard, and the reports cover every cell
    finished so far (an unsharded re-run afterwards computes nothing and writes the complete table).
    ``batch_size > 1`` restores the images of one (task, batched method) column together first
    (``batched_cells.py``); the cells are the same (their fingerprints do not include the batch size).
    """
    _validate(config)
    index, count = shard
    if not 0 <= index < count:
        raise BenchError(f"shard {index}/{count}: need 0 <= k < n")
    if prior is None:
        from ganprior.loading import LOAD_ERRORS, load_model

        try:
            prior = load_model(config.model, device=config.device)
        except LOAD_ERRORS as err:
            raise BenchError(str(err)) from err
    resolution = int(prior.resolution)
    images = load_images(config.images, resolution, limit=config.limit, root=config.images_root,
                         resize_kernel=config.resize_kernel, seed=config.seed)
    out = Path(config.out)
    store = CellStore(out)
    model = _model_info(prior, config, model_label)
    started = time.perf_counter()

    plan = _plan(config, images, resolution)
    mine = plan[index::count]
    method_cells = [(spec, img, col) for spec, img, cols in mine for col in cols if col in config.methods]
    fingerprints = {(spec.name, img.id, col): _cell_fingerprint(config, model, spec, img, col)
                    for spec, img, cols in plan for col in cols}
    already = sum(store.load(Cell(s.name, c, i.id), fingerprints[(s.name, i.id, c)]) is not None
                  for s, i, c in method_cells)
    bar = tqdm(total=len(method_cells), initial=already, desc="bench", unit="cell", disable=not progress)
    skipped: dict[str, dict[str, str]] = {}

    def saved(cell: Cell) -> None:
        if cell.column in config.methods:
            bar.update(1)
        if after_cell is not None:
            after_cell(cell)

    try:
        if batch_size > 1:
            from ganprior.bench.batched_cells import compute_batched_cells

            compute_batched_cells(mine, config, prior, store, fingerprints, batch_size, saved)
        for spec, image, columns in mine:
            todo = [c for c in columns if store.load(Cell(spec.name, c, image.id),
                                                      fingerprints[(spec.name, image.id, c)]) is None]
            _save_once(out / "clean" / f"{image.id}.png", image.clean)
            if not todo:
                continue
            seed = image_seed(config.seed, image.id)
            degraded = make_degraded(spec, image.clean, seed)
            _save_once(out / "inputs" / spec.name / f"{image.id}.png", degraded.observation)
            scorer = ImageScorer(_measures(spec), config.lpips_net, prior)
            for column in todo:
                cell = Cell(spec.name, column, image.id)
                bar.set_postfix_str(f"{spec.name} {column} {image.id}")
                computed = _compute_cell(cell, spec, image, degraded, scorer, prior, config, seed, skipped)
                if computed is None:
                    continue
                restored, record = computed
                record["fingerprint"] = fingerprints[(spec.name, image.id, column)]
                store.save(cell, restored, record)
                saved(cell)
    finally:
        bar.close()
    # FID/KID of a shard would be the same sets every shard computes again: left to the assembly run
    results = collect_results(config, model, images, plan, store, fingerprints, skipped, progress,
                              set_measures=count == 1)
    results["seconds_this_session"] = round(time.perf_counter() - started, 3)
    write_reports(results, out, images, plan, store, config.sheet_rows)
    return results


def _plan(config: BenchConfig, images: list[BenchImage], resolution: int):
    """``[(task spec, image, columns)]``: baselines that apply to the task, then the methods."""
    plan = []
    for spec in config.tasks:
        probe = make_degraded(spec, images[0].clean, 0).degradation
        baselines = applicable_baselines(probe, (resolution, resolution)) if config.baselines else []
        methods = [m for m in config.methods
                   if m not in config.variants or not config.variants[m].tasks or spec.name in config.variants[m].tasks]
        for image in images:
            plan.append((spec, image, [*baselines, *methods]))
    return plan


def _cell_fingerprint(config: BenchConfig, model: dict, spec: TaskSpec, image: BenchImage, column: str) -> str:
    parts: dict[str, Any] = {"model": model, "task": asdict(spec), "column": column, "seed": config.seed,
                             "image": image.id, "pixels": image.digest, "measures": _measures(spec),
                             "lpips_net": config.lpips_net}
    if column in config.methods:
        parts.update(preset=config.preset, steps=config.steps, perceptual=config.perceptual, label=image.label,
                     use_labels=config.use_labels, method=_method_and_options(column, config, spec.name))
    return _fingerprint(parts)


def _class_index(prior, image: BenchImage, config: BenchConfig) -> int | None:
    if not config.use_labels or image.label is None or not prior.c_dim:
        return None
    return image.label if 0 <= image.label < prior.c_dim else None


def _compute_cell(cell: Cell, spec: TaskSpec, image: BenchImage, degraded: Degraded, scorer: ImageScorer, prior,
                  config: BenchConfig, seed: int, skipped: dict) -> tuple[torch.Tensor, dict] | None:
    """(restoration, record) of one cell; None when a baseline cannot run here (reason in ``skipped``)."""
    size = tuple(image.clean.shape[-2:])
    start = time.perf_counter()
    info: dict[str, Any] = {}
    if cell.column in config.methods:
        restored, info = _restore_with_method(cell, spec, degraded, prior, config, _class_index(prior, image, config),
                                              seed)
    else:
        try:
            restored = run_baseline(cell.column, degraded.observation, degraded.degradation, size)
        except BaselineUnavailable as err:
            skipped.setdefault(spec.name, {})[cell.column] = str(err)
            return None
    return restored, scored_record(cell, image, degraded, scorer, restored, info, time.perf_counter() - start)


def scored_record(cell: Cell, image: BenchImage, degraded: Degraded, scorer: ImageScorer, restored: torch.Tensor,
                  info: dict, seconds: float) -> dict:
    """A cell's record: its scores against the clean image, its cost, and ``info`` from the run."""
    values = scorer(restored, image.clean, degraded.observation, degraded.degradation, degraded.hole)
    unavailable = {k: scorer.unavailable[k] for k in scorer.measures if k not in values and k in scorer.unavailable}
    return {"task": cell.task, "column": cell.column, "image": cell.image, "label": image.label,
            "seconds": round(seconds, 4), "values": values, "unavailable": unavailable, **info}


def _save_once(path: Path, image: torch.Tensor) -> None:
    if not path.is_file():
        from ganprior.images import save_image

        save_image(image, path)


# ----- results --------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def collect_results(config: BenchConfig, model: dict, images: list[BenchImage], plan, store: CellStore,
                    fingerprints: dict, skipped: dict, progress: bool = False, set_measures: bool = True) -> dict:
    """Read every finished cell back and aggregate (mean ± population std over images); the set-level
    measures (FID, KID) only when ``set_measures``."""
    from ganprior.images import load_image

    rows, per_column = [], {}
    unavailable: dict[str, dict[str, str]] = {}
    columns: dict[str, list[str]] = {}
    for spec, image, cols in plan:
        for column in cols:
            cell = Cell(spec.name, column, image.id)
            record = store.load(cell, fingerprints[(spec.name, image.id, column)])
            if record is None:
                continue
            columns.setdefault(spec.name, [])
            if column not in columns[spec.name]:
                columns[spec.name].append(column)
            rows.append({k: v for k, v in record.items() if k != "fingerprint"})
            unavailable.setdefault(spec.name, {}).update(record.get("unavailable", {}))
            for key, value in record["values"].items():
                if value is not None:
                    per_column.setdefault((spec.name, column, key), []).append(value)
    aggregates: dict[str, dict[str, dict[str, dict]]] = {}
    for spec in config.tasks:
        measures = _measures(spec)
        for column in columns.get(spec.name, []):
            agg = aggregates.setdefault(spec.name, {}).setdefault(column, {})
            for key in measures:
                if MEASURES[key].per_image:
                    agg[key] = _stats(per_column.get((spec.name, column, key), []))
            per_set = tuple(m for m in measures if not MEASURES[m].per_image)
            if not per_set:
                continue
            if not set_measures:
                agg.update({key: {"mean": None, "std": None, "n": 0} for key in per_set})
                unavailable.setdefault(spec.name, {}).update(
                    {key: "computed by the unsharded run that assembles the shards" for key in per_set})
                continue
            ids = [r["image"] for r in rows if r["task"] == spec.name and r["column"] == column]
            restored = torch.cat([load_image(store.image_path(Cell(spec.name, column, i))) for i in ids])
            reference = config.fid_reference or torch.cat([img.clean for img in images])
            values, reasons = set_scores(per_set, restored, reference, config.fid_min_images, progress)
            for key in per_set:
                agg[key] = {"mean": values.get(key), "std": None, "n": len(ids) if key in values else 0}
            unavailable.setdefault(spec.name, {}).update(reasons)
    results = {
        "config": {**asdict(config), "tasks": [asdict(t) for t in config.tasks]},
        "protocol": config.protocol,
        "seed": config.seed,
        "versions": _versions(),
        "model": model,
        "tasks": [{**asdict(t), "measures": list(_measures(t))} for t in config.tasks],
        "columns": columns,
        "methods": list(config.methods),
        "images": [{"id": i.id, "label": i.label, "source": i.source} for i in images],
        "rows": rows,
        "aggregates": aggregates,
        "unavailable": unavailable,
        "skipped": skipped,
        "seconds_per_cell": {c: _stats([r["seconds"] for r in rows if r["column"] == c])["mean"]
                             for c in dict.fromkeys(r["column"] for r in rows)},
    }
    if config.protocol:
        from ganprior.bench.table import paper_comparison

        results["paper_comparison"] = paper_comparison(results, get_protocol(config.protocol))
    return results


def write_reports(results: dict, out: Path, images: list[BenchImage], plan, store: CellStore,
                  sheet_rows: int = 16) -> None:
    """results.json, table.md, per_image.csv and the contact sheets."""
    from ganprior.bench.table import render_report

    atomic_write_text(out / RESULTS_FILE, _json_text(results))
    protocol: Protocol | None = get_protocol(results["protocol"]) if results.get("protocol") else None
    atomic_write_text(out / TABLE_FILE, render_report(results, protocol))
    atomic_write_text(out / CSV_FILE, _csv_text(results))
    _write_sheets(results, out, images, store, sheet_rows)


def _csv_text(results: dict) -> str:
    measures = list(dict.fromkeys(m for t in results["tasks"] for m in t["measures"] if MEASURES[m].per_image))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task", "image", "label", "column", "seconds", *measures, "stopped"])
    for row in results["rows"]:
        values = [row["values"].get(m) for m in measures]
        writer.writerow([row["task"], row["image"], row["label"], row["column"], row["seconds"],
                         *["" if v is None else repr(float(v)) for v in values], row.get("stopped") or ""])
    return buffer.getvalue()


def _write_sheets(results: dict, out: Path, images: list[BenchImage], store: CellStore, sheet_rows: int) -> None:
    """Rows = images; columns = degraded | baselines (except the input itself) | methods | clean."""
    from ganprior.images import load_image, make_sheet

    by_id = {i.id: i for i in images}
    for task in results["tasks"]:
        name = task["name"]
        columns = [c for c in results["columns"].get(name, []) if c != "input"]
        ids = [i.id for i in images if (out / "inputs" / name / f"{i.id}.png").is_file()]
        pages = [ids[k:k + sheet_rows] for k in range(0, len(ids), max(1, sheet_rows))]
        for number, page in enumerate(pages, 1):
            rows, labels = [], []
            for image_id in page:
                row = [load_image(out / "inputs" / name / f"{image_id}.png")]
                captions = [f"degraded {image_id}"]
                for column in columns:
                    path = store.image_path(Cell(name, column, image_id))
                    row.append(load_image(path) if path.is_file() else torch.zeros_like(by_id[image_id].clean))
                    captions.append(column if path.is_file() else f"{column} (missing)")
                rows.append([*row, by_id[image_id].clean])
                labels.append([*captions, "clean (ground truth)"])
            make_sheet(rows, labels, out / "sheets" / f"{name}-{number:02d}.png")
