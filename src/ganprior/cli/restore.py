"""``ganprior restore IMAGE [IMAGE...]``: restore degraded photos with a GAN prior.

Each image gets its own run directory ``OUT/<image stem>/`` (see ``ganprior.results``), written
atomically; images whose run directory is already complete are skipped, so an interrupted batch
resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import click
from tqdm.auto import tqdm

from ganprior.methods import PRESETS, available_methods
from ganprior.methods.dgp_presets import SCHEDULES

def _per_image_errors() -> tuple[type[Exception], ...]:
    """Errors that concern one image only (the rest of the batch still runs)."""
    from ganprior.images import ImageLoadError, MaskSizeError

    return ImageLoadError, MaskSizeError


@click.command("restore")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", default="colorize", show_default=True,
              help="Degradation of the input: colorize, inpaint, sr, denoise, deblur, jpeg, or a '+'-joined mix "
                   "such as sr4+colorize+inpaint.")
@click.option("--mask", default=None, help="Inpainting mask: a file (with --mask-hole-value) or a spec (center, box:x0,y0,x1,y1).")
@click.option("--mask-hole-value", type=click.Choice(["black", "white", "transparent"]), default=None,
              help="Which mask pixels are holes.")
@click.option("--scale", type=int, default=None, help="Super-resolution factor (or write it in the task: sr4).")
@click.option("--method", type=click.Choice(available_methods()), default="cri", show_default=True)
@click.option("--model", default=None, help="Model name or checkpoint path (default: the embedded model).")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Explicit local checkpoint for --model.")
@click.option("--class", "class_index", type=int, default=None, help="Class index (default: estimated).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("restored"),
              show_default=True, help="Output folder: one run directory per image.")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Cap every stage at this many iterations (quick runs).")
@click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True)
@click.option("--perceptual", default=None,
              help="Perceptual distance (auto, nvidia-vgg16, lpips-vgg, lpips-alex, discriminator, feature-net, mse); "
                   "default auto: the model's own feature net, else nvidia-vgg16, else (offline) its discriminator.")
@click.option("--fit", type=click.Choice(["letterbox", "crop"]), default="letterbox", show_default=True,
              help="How a non-square photo goes onto the generator canvas.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--video", is_flag=True, help="Also save the optimisation as a GIF.")
@click.option("--overwrite", is_flag=True, help="Redo images whose output already exists.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="DGP only: fine-tuning schedule (default: the task's; e.g. sr-mse for the PSNR-biased SR table).")
@click.option("--early-stop-mse", type=click.FloatRange(min=0, min_open=True), default=None,
              help="DGP only: stop once the MSE to the observation ([-1, 1] scale) is below this; with "
                   "--task reconstruct this is the adversarial-defence mode (paper Table 10).")
def command(images, task, mask, mask_hole_value, scale, method, model, weights, class_index, seed, out_dir, steps,
            preset, perceptual, fit, device, video, overwrite, schedule, early_stop_mse) -> None:
    """Restore degraded IMAGES (the observations) by inverting a GAN prior."""
    dgp_options = {k: v for k, v in (("schedule", schedule), ("early_stop_mse", early_stop_mse)) if v is not None}
    if dgp_options and method != "dgp":
        raise click.UsageError("--schedule and --early-stop-mse only apply to --method dgp")
    from ganprior.api import restore
    from ganprior.loading import LOAD_ERRORS, load_model
    from ganprior.results import is_finished

    try:
        prior = load_model(model, weights=weights, device=device)
    except LOAD_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    per_image = _per_image_errors()
    failures = 0
    targets = [(path, out_dir / path.stem) for path in images]
    stems = [t.name for _, t in targets]
    if len(set(stems)) != len(stems):
        raise click.UsageError("several images share a file name stem; their run directories would collide")
    for path, target in tqdm(targets, desc="images", disable=len(targets) < 2):
        if is_finished(target) and not overwrite:
            click.echo(f"skip {path}: {target} is already complete")
            continue
        try:
            result = restore(path, task=task, method=method, model=prior, mask=mask, mask_hole_value=mask_hole_value,
                             scale=scale, class_index=class_index, seed=seed, steps=steps, preset=preset,
                             perceptual=perceptual, fit=fit, progress=True, video=video, options=dgp_options)
        except per_image as exc:
            failures += 1
            click.echo(f"error: {path}: {exc}", err=True)
            continue
        except (ValueError, RuntimeError) as exc:  # configuration errors: the same for every image
            raise click.ClickException(f"{path}: {exc}") from exc
        result.save(target, video=video)
        info = f"class {result.class_index}" if result.class_index is not None else ""
        click.echo(f"{path} -> {target} {info} ({result.timings.get('total', 0):.1f} s)")
        if result.stopped:
            failures += 1
            click.echo(f"warning: {path}: {result.stopped}; saved the best result so far", err=True)
    if failures:
        raise click.ClickException(f"{failures} of {len(targets)} image(s) failed or stopped early")
