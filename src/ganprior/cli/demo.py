"""``ganprior demo --out DIR``: restore a few held-out emoji with the embedded model, offline.

For colorization, inpainting (centre hole), x4 super-resolution and x4 SR + colorization, every chosen
held-out image (never trained on; shipped in the package) is degraded, restored with CRI (and DGP when
this installation has it) and scored against the clean image. Written to ``DIR``:

  <task>.png      one row per image: degraded | each method | ground truth (captions: PSNR)
  summary.md      PSNR / SSIM / emoji-feature-net distance per task and method, next to the degraded input's
  summary.json    the same numbers, the settings and the seconds spent

The step cap keeps the whole demo within a few minutes on a laptop CPU; raise ``--steps`` for quality.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from tqdm.auto import tqdm

from ganprior.cli.threads import apply_threads, threads_option

TASKS = ("colorize", "inpaint", "sr4", "sr4+colorize")
MASK = "center"
DEFAULT_STEPS = 100
#: CRI keeps the paper preset (its shipped banks are the paper's N=10, M=10,000); DGP runs its "fast"
#: table (100 candidates instead of 500, a fifth of the iterations), both capped by ``--steps``.
PRESETS = {"dgp": "fast"}


def restore_options(prior, method: str, task: str, preset: str | None = None) -> dict[str, Any]:
    """``restore`` keywords for ``method`` on the embedded model: the feature-net distance for the
    StyleGAN methods; for DGP its discriminator loss, with the BigGAN-only switches of its schedules
    (BN->IN swap, class-embedding tuning) turned off on other families. ``preset`` defaults to :data:`PRESETS`."""
    preset = preset or PRESETS.get(method, "official")
    if method != "dgp":
        return {"preset": preset, "perceptual": "feature-net"}
    kwargs: dict[str, Any] = {"preset": preset}
    if prior.family != "biggan":
        from ganprior.methods.dgp_presets import preset_options, resolve_schedule

        chosen = preset_options(preset, task)
        stages = resolve_schedule(chosen["table"], chosen["schedule"])["stages"]
        kwargs["options"] = {"stage_instance_norm": [False] * len(stages), "update_embed": False}
    return kwargs


def _pick(labels: np.ndarray, n: int, seed: int) -> list[int]:
    """``n`` held-out images from as many different classes as possible (seeded)."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    return [int(rng.choice(np.flatnonzero(labels == classes[i % len(classes)]))) for i in range(n)]


def _shown(observation: torch.Tensor, size: int) -> torch.Tensor:
    """The observation at the clean size (pixel replication for SR) so it can be scored and shown."""
    factor = size // observation.shape[-1]
    return observation.repeat_interleave(factor, -1).repeat_interleave(factor, -2) if factor > 1 else observation


def run_demo(out: Path, n_images: int = 2, steps: int | None = DEFAULT_STEPS, methods: tuple[str, ...] | None = None,
             seed: int = 0, model: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the demo into ``out``; returns what ``summary.json`` holds."""
    from ganprior import restore
    from ganprior.data.emoji import load_emoji_test
    from ganprior.degradations import parse_task
    from ganprior.images import make_sheet
    from ganprior.loading import load_model
    from ganprior.losses.perceptual import FeatureNetDistance
    from ganprior.methods import available_methods
    from ganprior.bench.scoring import ssim_colour
    from ganprior.metrics import psnr, ssim

    started = time.perf_counter()
    prior = load_model(model)
    if getattr(prior, "feature_net", None) is None:
        raise click.ClickException("the demo needs a model that ships the emoji-feature-net (the embedded emoji32)")
    methods = methods or tuple(m for m in ("cri", "dgp") if m in available_methods())
    if unknown := [m for m in methods if m not in available_methods()]:
        raise click.ClickException(f"unknown method(s) {unknown}; available: {', '.join(available_methods())}")
    load_seconds = time.perf_counter() - started
    test = load_emoji_test(prior.resolution)
    chosen = _pick(test.labels, n_images, seed)
    clean = torch.from_numpy(test.images[chosen]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    distance = FeatureNetDistance().prepare(prior)
    out.mkdir(parents=True, exist_ok=True)
    rows, timings = [], {}
    bar = tqdm(total=len(TASKS) * len(chosen) * len(methods), desc="demo", unit="run", disable=not progress)
    for task in TASKS:
        mask = MASK if "inpaint" in task else None
        degradation = parse_task(task, mask=mask, image_size=clean.shape[-2:], seed=seed)
        outputs: dict[str, list[torch.Tensor]] = {"degraded input": []}
        for i in range(len(chosen)):
            y = degradation(clean[i:i + 1])
            outputs["degraded input"].append(_shown(y, prior.resolution))
            for method in methods:
                t0 = time.perf_counter()
                result = restore(y, task, method, prior, mask=mask, seed=seed, steps=steps, progress=False,
                                 value_range=(-1, 1), **restore_options(prior, method, task))
                timings[f"{task}/{method}"] = timings.get(f"{task}/{method}", 0.0) + time.perf_counter() - t0
                outputs.setdefault(method, []).append(result.image.cpu().clamp(-1, 1))
                bar.update(1)
        scores = {}
        for name, images in outputs.items():
            x = torch.cat(images)
            with torch.no_grad():
                scores[name] = {"psnr": psnr(x, clean), "ssim": ssim(x, clean, color=ssim_colour(degradation)),
                                "feature_distance": distance(x, clean)}
            rows.append({"task": task, "method": name, **{k: float(v.mean()) for k, v in scores[name].items()}})
        names = list(outputs)
        sheet_rows = [[outputs[n][i] for n in names] + [clean[i:i + 1]] for i in range(len(chosen))]
        captions = [[f"{n}\n{float(scores[n]['psnr'][i]):.1f} dB" for n in names]
                    + [f"clean (ground truth)\n{test.classes[test.labels[j]]}"] for i, j in enumerate(chosen)]
        make_sheet(sheet_rows, captions, out / f"{task.replace('+', '_')}.png")
    bar.close()
    summary = {"model": model or "emoji32", "threads": torch.get_num_threads(), "images": chosen, "classes": [int(test.labels[j]) for j in chosen],
               "methods": list(methods), "steps_cap": steps, "seed": seed, "mask": MASK, "rows": rows,
               "seconds": {"load": round(load_seconds, 2), **{k: round(v, 2) for k, v in timings.items()},
                           "total": round(time.perf_counter() - started, 2)}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    lines = [f"# ganprior demo ({summary['model']})", "",
             f"{len(summary['images'])} held-out images, steps cap {summary['steps_cap']}, seed {summary['seed']}, "
             f"total {summary['seconds']['total']} s. Scores against the clean image (higher PSNR/SSIM and lower "
             "emoji-feature-net distance are better).", "",
             "| task | method | PSNR (dB) | SSIM | feature-net distance |", "|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['feature_distance']:.4f} |"
              for r in summary["rows"]]
    return "\n".join(lines) + "\n"


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True, help="Folder for the before/after sheets and the summary table.")
@click.option("--images", "n_images", type=click.IntRange(min=1), default=2, show_default=True,
              help="How many held-out images (from different classes).")
@click.option("--steps", type=click.IntRange(min=0), default=DEFAULT_STEPS, show_default=True,
              help="Cap every optimisation stage (quality vs time).")
@click.option("--method", "methods", multiple=True, help="Method(s) to run (default: cri, and dgp when available).")
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
def command(out_dir: Path, n_images: int, steps: int, methods: tuple[str, ...], seed: int, threads: int | None) -> None:
    """Restore held-out emoji (colorize, inpaint, sr4, sr4+colorize) with the embedded model; no network."""
    from ganprior.loading import LOAD_ERRORS

    threads = apply_threads(threads)
    click.echo(f"torch threads: {threads}", err=True)
    try:
        summary = run_demo(out_dir, n_images, steps, methods or None, seed)
    except LOAD_ERRORS as err:
        raise click.ClickException(str(err)) from err
    click.echo((out_dir / "summary.md").read_text())
    click.echo(f"sheets and summary in {out_dir} ({summary['seconds']['total']:.0f} s)")
