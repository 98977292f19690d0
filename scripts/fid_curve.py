"""FID of the embedded prior against training progress: score snapshots, log them, plot the curve.

    OMP_NUM_THREADS=1 python scripts/fid_curve.py --run runs/emoji32_v2 [--every-kimg 150]

scores the EMA generator of each ``snapshots/ckpt-*.pt`` of a ``ganprior train`` run (and of the shipped
model, as the first point) with FID on ``--samples`` generated images vs the train split and vs the
held-out split (the protocol of ``scripts/build_embedded.py``'s fid stage: classes uniform, truncation 1,
constant noise, seed 0; reference features cached on disk). A snapshot closer than ``--every-kimg`` to
an already scored point is skipped: each FID-2k costs ~6 CPU-minutes. Each point is appended to
``docs/training/fid_curve.jsonl`` (kimg, iteration, fid, fid_held_out, cpu_hours, time) and the curve
is redrawn as ``docs/training/fid_curve.png`` (FID vs kimg and vs CPU-hours); ``--plot-only`` redraws.

``cpu_hours``: wall-clock hours of single-thread CPU training to reach the point, from the run's
``log.jsonl`` (iterations x seconds per iteration) plus ``--base-cpu-hours`` for the shipped model
(its 1.03 h CPU continuation; the 5.5 minutes on an H200 before it are not counted). On a shared
machine the process gets less than a core, so this overstates the compute spent.

With the machine busy, run ``--shard 0/3``, ``1/3``, ``2/3`` side by side first (each caches its
share of the Inception features), then the same command without ``--shard`` to score and log.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_embedded import FID_BATCH, ROOT, generate, load_generator, reference_sets, shard  # noqa: E402

from ganprior.atomic import atomic_path, atomic_write_text  # noqa: E402

SHIPPED = ROOT / "src" / "ganprior" / "assets" / "emoji32" / "model.safetensors"
SHIPPED_ITERATION = 10012
SHIPPED_CPU_HOURS = 62 / 60
BATCH = 32
DOCS = ROOT / "docs" / "training"
#: images per cached feature chunk (the 671 held-out images stay one chunk)
CHUNK = 700
#: the log's key for the FID against each reference split
REFERENCE_KEYS = {"train": "fid", "held_out": "fid_held_out"}
COLOURS = {"vs train": (31, 119, 180), "vs held-out": (214, 39, 40)}


def read_points(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_cpu_hours(log: Path, iteration: int, base: float) -> float:
    """``base`` + the seconds the run's log says iterations up to ``iteration`` took, in hours."""
    seconds, previous = 0.0, None
    for line in log.read_text().splitlines() if log.is_file() else []:
        record = json.loads(line)
        if record["iter"] > iteration:
            break
        if previous is not None and record["iter"] > previous:
            seconds += (record["iter"] - previous) * record["s_per_it"]
        previous = record["iter"]
    return base + seconds / 3600


def snapshot_iteration(path: Path) -> int:
    match = re.fullmatch(r"ckpt-(\d+)\.pt", path.name)
    if not match:
        raise SystemExit(f"{path} is not a snapshot (snapshots/ckpt-NNNNNNN.pt)")
    return int(match.group(1))


def chunked_features(images: torch.Tensor, extractor, shard: tuple[int, int] = (0, 1)) -> np.ndarray | None:
    """Inception features, computed and cached on disk ``CHUNK`` images at a time.

    With ``shard=(k, n)``, n > 1, only chunks ``i = k mod n`` are computed (and cached) and None is
    returned: n processes then share one feature set, and a killed run loses at most one chunk.
    """
    from ganprior.metrics.fid import inception_stats

    k, n = shard
    parts = [inception_stats(images[start:start + CHUNK], extractor=extractor).features
             for i, start in enumerate(range(0, len(images), CHUNK)) if i % n == k]
    return np.concatenate(parts) if n == 1 else None


# ----- plot ------------------------------------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, count: int = 8) -> list[float]:
    raw = (hi - lo) / count
    step = min((m * 10 ** e for e in range(-3, 6) for m in (1, 2, 5) if m * 10 ** e >= raw), default=raw)
    first = step * int(lo // step)
    return [first + i * step for i in range(count + 3) if first + i * step <= hi + 1e-9 and first + i * step >= lo - 1e-9]


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], series: dict[str, list[tuple[float, float]]],
           xlabel: str, font) -> None:
    """Axes, ticks and one polyline with dots per series inside ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x_lo, x_hi = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_lo, y_hi = 0.0, max(ys) * 1.1
    pad = (x_hi - x_lo) * 0.05
    x_lo, x_hi = x_lo - pad, x_hi + pad

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left), bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

    draw.rectangle(box, outline="black")
    for y in _nice_ticks(y_lo, y_hi):
        _, py = at(x_lo, y)
        draw.line([(left, py), (right, py)], fill=(225, 225, 225))
        draw.text((left - 6, py), f"{y:g}", fill="black", font=font, anchor="rm")
    for x in _nice_ticks(x_lo, x_hi):
        px, _ = at(x, y_lo)
        draw.line([(px, bottom), (px, bottom + 4)], fill="black")
        draw.text((px, bottom + 6), f"{x:g}", fill="black", font=font, anchor="mt")
    draw.text(((left + right) / 2, bottom + 24), xlabel, fill="black", font=font, anchor="mt")
    for name, pts in series.items():
        colour = COLOURS[name]
        pixels = [at(x, y) for x, y in sorted(pts)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    for i, (name, _) in enumerate(series.items()):
        draw.text((right - 8, top + 8 + 16 * i), name, fill=COLOURS[name], font=font, anchor="ra")


def plot(points: list[dict], path: Path) -> None:
    """FID vs kimg (left) and vs CPU-hours (right), train and held-out references."""
    font = ImageFont.load_default()
    image = Image.new("RGB", (960, 400), "white")
    draw = ImageDraw.Draw(image)
    draw.text((480, 10), f"emoji32 prior: FID ({points[0]['samples']:,} samples) during training",
              fill="black", font=font, anchor="mt")
    for i, (key, label) in enumerate((("kimg", "kimg (thousands of real images shown to D)"),
                                      ("cpu_hours", "CPU-hours: wall-clock hours of 1-thread training"))):
        series = {f"vs {name.replace('_', '-')}": [(p[key], p[fid]) for p in points if fid in p]
                  for name, fid in REFERENCE_KEYS.items()}
        series = {name: pts for name, pts in series.items() if pts}
        _panel(draw, (60 + i * 470, 40, 440 + i * 470, 340), series, label, font)
    draw.text((12, 190), "FID", fill="black", font=font, anchor="lm")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


# ----- main ------------------------------------------------------------------------------------------
def pending(args: argparse.Namespace, points: list[dict], keys: list[str]) -> list[tuple[Path, int]]:
    """(checkpoint, iteration) to score: the shipped model, then snapshots ``--every-kimg`` apart
    (or the ``--ckpt`` given), each unless its logged point already has every requested FID."""
    done = {p["iteration"] for p in points if all(k in p for k in keys)}
    candidates = [(SHIPPED, SHIPPED_ITERATION)]
    candidates += [(path, snapshot_iteration(path)) for path in
                   (args.ckpt if args.ckpt is not None else sorted((args.run / "snapshots").glob("ckpt-*.pt")))]
    todo, kept = [], [p["kimg"] for p in points]
    for path, iteration in candidates:
        kimg = iteration * BATCH / 1000
        if path != SHIPPED and args.ckpt is None and iteration not in {p["iteration"] for p in points} \
                and kept and min(abs(kimg - k) for k in kept) < args.every_kimg:
            continue
        kept.append(kimg)
        if iteration not in done:
            todo.append((path, iteration))
    return todo


def score_all(args: argparse.Namespace, todo: list[tuple[Path, int]], references: list[str]) -> bool:
    """Score ``todo`` and merge the points into the log; with ``--shard`` only fill the feature cache
    (the generated sets, then the held-out and train references) and return False."""
    from ganprior.metrics.fid import InceptionFeatures, frechet_distance_of_features

    extractor = InceptionFeatures(device="cpu", batch_size=FID_BATCH)
    refs = reference_sets(args.data, 32)
    sharded = args.shard != (0, 1)
    ref_features = {} if sharded else {name: chunked_features(refs[name], extractor) for name in references}
    for path, iteration in todo:
        started = time.perf_counter()
        fake = chunked_features(generate(load_generator(path), args.samples, args.seed), extractor, args.shard)
        if fake is None:
            continue
        cpu_hours = args.base_cpu_hours if path == SHIPPED else \
            training_cpu_hours(args.run / "log.jsonl", iteration, args.base_cpu_hours)
        resolved = path.resolve()
        point = {"kimg": iteration * BATCH / 1000, "iteration": iteration, "samples": args.samples, "seed": args.seed,
                 **{REFERENCE_KEYS[r]: frechet_distance_of_features(fake, ref_features[r]) for r in references},
                 "cpu_hours": round(cpu_hours, 3), "seconds": round(time.perf_counter() - started, 1),
                 "source": str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else path.name,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        logged = {p["iteration"]: p for p in read_points(args.log)}
        logged[iteration] = {**logged.get(iteration, {}), **point}
        atomic_write_text(args.log, "".join(json.dumps(p) + "\n" for p in sorted(logged.values(),
                                                                                 key=lambda p: p["kimg"])))
        print(json.dumps(point), flush=True)
    for name in sorted(references, key=lambda r: r != "held_out") if sharded else []:
        chunked_features(refs[name], extractor, args.shard)
    return not sharded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "emoji32_v2", help="ganprior train run folder")
    parser.add_argument("--ckpt", type=Path, nargs="*", default=None,
                        help="score these snapshots (default: every one in --run/snapshots, spaced by --every-kimg)")
    parser.add_argument("--every-kimg", type=float, default=150.0)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cache" / "emoji_32.npz")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--base-cpu-hours", type=float, default=SHIPPED_CPU_HOURS)
    parser.add_argument("--log", type=Path, default=DOCS / "fid_curve.jsonl")
    parser.add_argument("--plot", type=Path, default=DOCS / "fid_curve.png")
    parser.add_argument("--references", default="train,held_out",
                        help="comma-separated reference splits: train (key fid), held_out (key fid_held_out)")
    parser.add_argument("--shard", type=shard, default=(0, 1), metavar="K/N",
                        help="only compute (and cache) every N-th feature chunk from K, for N processes side by "
                             "side; a run without it then scores from the cache")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error("--samples must be at least 2")
    references = [r.strip() for r in args.references.split(",") if r.strip()]
    if not references or set(references) - set(REFERENCE_KEYS):
        parser.error(f"--references: choose from {', '.join(REFERENCE_KEYS)}, got {args.references!r}")
    torch.set_num_threads(args.threads)

    points = read_points(args.log)
    if not args.plot_only:
        todo = pending(args, points, [REFERENCE_KEYS[r] for r in references])
        if not score_all(args, todo, references):
            return
        points = read_points(args.log)
    if not points:
        raise SystemExit(f"no points in {args.log} to plot")
    plot(sorted(points, key=lambda p: p["kimg"]), args.plot)
    print(f"{len(points)} points -> {args.plot}")


if __name__ == "__main__":
    main()
