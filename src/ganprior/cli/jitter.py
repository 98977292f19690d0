"""``ganprior jitter SOURCE``: natural variants of a reconstruction (DGP's random jittering).

SOURCE is a run directory written by ``ganprior restore`` (any method: DGP, CRI, PTI, W/W+) or an image,
which is first reconstructed with DGP. The options shared with ``morph`` and ``transfer`` live here.

The variants start from the restoration the user made: its latent and tuned generator, and they are shown
as that restoration was (:class:`PhotoMapping`): mapped from the generator canvas back to the photo's size
and fused with the run's observation, so the variant at std 0 is ``restored.png`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from ganprior.methods import PRESETS


def source_options(fn: Callable) -> Callable:
    """Model and reconstruction options shared by jitter, morph and transfer."""
    options = [
        click.option("--model", default=None, help="Model name or checkpoint (default: the one the run used)."),
        click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Explicit local checkpoint."),
        click.option("--device", default="cpu", show_default=True),
        click.option("--task", default="reconstruct", show_default=True,
                     help="For image sources: the degradation of the image (reconstruct = a clean photo)."),
        click.option("--class", "class_index", type=int, default=None,
                     help="For image sources: the class (default: selected)."),
        click.option("--preset", type=click.Choice(PRESETS), default="official", show_default=True),
        click.option("--steps", type=click.IntRange(min=0), default=None, help="Cap every DGP stage (quick runs)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
                     help="Output folder."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_model_for(sources: list[Path], model: str | None, weights: str | None, device: str) -> Any:
    """The model given, else the one recorded in the first run directory among ``sources`` (loaded by
    name, so warnings and run.json name it as the registry does)."""
    from ganprior.api import load_prior
    from ganprior.loading import LOAD_ERRORS
    from ganprior.manipulation import Reconstruction

    if model is None and weights is None:
        labels = [Reconstruction.model_label(s) for s in sources if s.is_dir() and (s / "run.json").is_file()]
        model = next((label for label in labels if label not in (None, "default")), None)
    try:
        return load_prior(model, weights=weights, device=device)
    except LOAD_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc


class PhotoMapping:
    """How a run's generator images became its photo: the canvas placement, the observation and the
    task's fusion, rebuilt from the run folder (``degraded.png``, ``mask.png``, ``run.json``) by the same
    ``prepare_restore`` that made ``restored.png``."""

    def __init__(self, run_dir: Path, prior: Any) -> None:
        import warnings

        from ganprior.api import prepare_restore
        from ganprior.image_files import RUN_MASK_HOLE_VALUE
        from ganprior.resume import read_run
        from ganprior.results import MASK_FILE

        record = read_run(run_dir) or {}
        config = record.get("config") or {}
        mask = run_dir / MASK_FILE
        with warnings.catch_warnings():  # the run said them already
            warnings.simplefilter("ignore")
            self.prepared = prepare_restore(
                run_dir / "degraded.png", task=config.get("task", "reconstruct"), method=config.get("method", "w"),
                model=prior, mask=str(mask) if mask.is_file() else None,
                mask_hole_value=RUN_MASK_HOLE_VALUE if mask.is_file() else None, fit=config.get("fit", "letterbox"),
                class_index=(record.get("class") or {}).get("index"), seed=int(config.get("seed") or 0),
                steps=0, progress=False)

    def __call__(self, images: Any, fused: bool = True) -> Any:
        """Generator images ``[N, C, R, R]`` -> photo-size images, fused with the observation (or not)."""
        import torch

        return torch.cat([self.prepared.to_photo(img[None].to(self.prepared.prior.device))[int(fused)].cpu()
                          for img in images])


def photo_mappings(sources: list[Path], prior: Any, out_dir: Path) -> list[PhotoMapping]:
    """Each source's mapping: its own run folder, or the reconstruction saved for an image source."""
    return [PhotoMapping(s if s.is_dir() else out_dir / f"reconstruction_{s.stem}", prior) for s in sources]


def reconstructions(sources: list[Path], prior: Any, out_dir: Path, task: str, class_index: int | None,
                    preset: str, steps: int | None, seed: int) -> list[Any]:
    """Load or compute each source's reconstruction; computed ones are saved under ``out_dir/<stem>``."""
    from ganprior.manipulation import ManipulationError, reconstruction_from

    recs = []
    for source in sources:
        try:
            rec, result = reconstruction_from(source, prior, task=task, class_index=class_index, seed=seed,
                                              steps=steps, preset=preset)
        except (ManipulationError, ValueError, RuntimeError) as exc:
            raise click.ClickException(f"{source}: {exc}") from exc
        if result is not None:
            result.save(out_dir / f"reconstruction_{source.stem}")
        recs.append(rec)
    return recs


@click.command("jitter")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@source_options
@click.option("--n", "n", type=click.IntRange(min=1), default=30, show_default=True, help="Variants per std.")
@click.option("--std", "stds", type=click.FloatRange(min=0), multiple=True, default=(0.3, 0.5, 0.7),
              show_default=True, help="Perturbation size (repeat for several).")
def command(source, model, weights, device, task, class_index, preset, steps, seed, out_dir, n, stds) -> None:
    """Render natural variations of a reconstruction by perturbing its latent."""
    from ganprior.images import make_sheet
    from ganprior.manipulation import ManipulationError, jitter, save_frames

    prior = load_model_for([source], model, weights, device)
    rec = reconstructions([source], prior, out_dir, task, class_index, preset, steps, seed)[0]
    try:
        images = photo_mappings([source], prior, out_dir)[0](jitter(prior, rec, n=n, stds=stds, seed=seed))
    except ManipulationError as exc:
        raise click.ClickException(str(exc)) from exc
    save_frames(images, out_dir, "jitter")
    rows = [list(images[i * n:(i + 1) * n]) for i in range(len(stds))]
    labels = [[f"std {s:g} #{j}" for j in range(n)] for s in stds]
    make_sheet(rows, labels, out_dir / "jitter_sheet.png")
    click.echo(f"{len(images)} variants -> {out_dir}")
