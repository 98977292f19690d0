"""``ganprior score IMAGE [--ref CLEAN] [--mask MASK --mask-hole-value V]``: every metric that applies, as JSON.

* IMAGE alone: no-reference metrics (NIQE).
* ``--ref``: PSNR / SSIM in their named colour conventions, LPIPS (when its backbone is here) and,
  when the reference shows a face, identity similarity (dlib's ResNet face embedding).
* ``--mask`` with ``--mask-hole-value`` (the same convention as ``ganprior restore``; a run folder's
  ``mask.png`` is ``--mask-hole-value black``): the same full-reference metrics on the hole only, as DGP
  reports inpainting.
* IMAGE and ``--ref`` folders: FID and KID between the sets (with a warning below
  :data:`FID_MIN_IMAGES` images, where both are strongly biased), plus per-image metrics averaged over
  files paired by relative path (one ``--mask`` file then applies to every pair).

Metrics that cannot be computed are listed under ``"unavailable"`` with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from ganprior.image_files import CLI_NAMES, HOLE_VALUES, RUN_MASK_HOLE_VALUE, observed_from_file
from ganprior.mask_conventions import MASK_CONVENTION_HELP, MASK_CONVENTIONS, hole_value_for
from ganprior.metrics.fid import WHEEL, WHEEL_VERSION, fid, image_files, inception_stats, kid
from ganprior.metrics.images import MetricInputError, MetricUnavailable, load_image
from ganprior.metrics.lpips_metric import lpips_distance
from ganprior.metrics.niqe import niqe
from ganprior.metrics.registry import METRICS, canonical, pixel_metric

#: names from the metric registry (pyiqa's where they mean the same; old names are its aliases)
FULL_REFERENCE = ("psnr", "psnry", "psnr_ycbcr", "ssim", "ssimc", "ssim_ycbcr")
CONVENTIONS = {
    "range": "8-bit images, data range 255",
    **{name: METRICS[name].meaning for name in FULL_REFERENCE},
    "*_hole": "only on the holes of --mask (read with --mask-hole-value, as restore reads it)",
    "niqe": "official pristine parameters, MATLAB rgb2gray, 96x96 blocks",
    "id_sim": "cosine of dlib's ResNet face embedding (not ArcFace), face found on --ref; id_dist: its "
              "Euclidean distance (dlib: < 0.6 = same person)",
    "fid": f"clean-fid protocol, Inception-2015-12-05 from {WHEEL}=={WHEEL_VERSION}",
}


#: below this many images per set FID/KID are reported with a warning (the papers use thousands)
FID_MIN_IMAGES = 50


class Scores:
    """Collects values and reasons; averages values over image pairs."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.unavailable: dict[str, str] = {}
        self.warnings: list[str] = []

    def add(self, name: str, compute) -> None:
        if name in self.unavailable:
            return
        try:
            value = compute()
        except (MetricUnavailable, MetricInputError) as err:
            self.values.pop(name, None)
            self.unavailable[name] = getattr(err, "reason", str(err))
            return
        self.values.setdefault(name, []).append(float(value))

    def as_dict(self) -> dict:
        means = {name: sum(v) / len(v) for name, v in self.values.items()}
        return {"metrics": means, "unavailable": self.unavailable, "warnings": self.warnings}


def _load_mask(path: Path | None, hole_value: str | None, like: torch.Tensor) -> torch.Tensor | None:
    """The mask file read exactly as ``ganprior restore --mask`` reads it (1 = observed)."""
    if path is None:
        return None
    from ganprior.images import load_mask

    try:
        return load_mask(path, hole_value=hole_value, size=like.shape[-2:], names=CLI_NAMES)  # type: ignore[arg-type]
    except ValueError as err:
        raise MetricInputError(str(err)) from err


def score_image(scores: Scores, image: torch.Tensor, ref: torch.Tensor | None, mask_path: Path | None,
                lpips_net: str, hole_value: str | None = RUN_MASK_HOLE_VALUE) -> None:
    """Add every single-image metric that applies to ``scores``; ``hole_value`` reads the mask file (the
    default is a run folder's ``mask.png``; the CLI always says it)."""
    scores.add("niqe", lambda: niqe(image).item())
    if ref is None:
        return
    if ref.shape != image.shape:
        if ref.shape[-2:] != image.shape[-2:]:
            raise MetricInputError(f"image {tuple(image.shape[-2:])} and reference {tuple(ref.shape[-2:])} differ in size")
        image, ref = image.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1)
    for name in FULL_REFERENCE:
        scores.add(name, lambda: pixel_metric(name, image, ref).item())
    scores.add(canonical(f"lpips_{lpips_net}"), lambda: lpips_distance(image, ref, net=lpips_net).item())
    _identity(scores, image, ref)
    mask = _load_mask(mask_path, hole_value, image)
    if mask is not None:
        for name in ("psnr_hole", "ssim_hole"):
            scores.add(name, lambda: pixel_metric(name, image, ref, 1 - mask).item())


def _identity(scores: Scores, image: torch.Tensor, ref: torch.Tensor) -> None:
    """Face identity (dlib's ResNet embedding); unavailable, with the reason, when the reference has no face."""
    from ganprior.metrics.identity import identity_scores

    found: dict[str, float] = {}

    def part(key: str) -> float:
        if not found:
            found.update(identity_scores(image, ref))
        return found[key]

    scores.add("id_sim", lambda: part("id_sim"))
    scores.add("id_dist", lambda: part("id_dist"))


def _pairs(image_dir: Path, ref_dir: Path) -> list[tuple[Path, Path]]:
    images = {p.relative_to(image_dir): p for p in image_files(image_dir)}
    refs = {p.relative_to(ref_dir): p for p in image_files(ref_dir)}
    if set(images) != set(refs):
        missing = sorted(str(p) for p in set(images) ^ set(refs))[:5]
        raise MetricInputError(f"per-image metrics need the same file names in both folders; unmatched: {missing}")
    return [(images[k], refs[k]) for k in sorted(images)]


def score_folders(scores: Scores, image_dir: Path, ref_dir: Path | None, mask_path: Path | None,
                  lpips_net: str, cache_dir: Path | None, hole_value: str | None = RUN_MASK_HOLE_VALUE) -> dict:
    """FID/KID between the folders and per-image metrics averaged over paired files."""
    if ref_dir is None:
        scores.unavailable["fid"] = scores.unavailable["kid"] = "needs a reference folder (--ref)"
        for path in image_files(image_dir):
            score_image(scores, load_image(path), None, None, lpips_net)
        return {}
    if not ref_dir.is_dir():
        raise MetricInputError(f"IMAGE is a folder, so --ref must be a folder too: {ref_dir}")
    options = {"cache_dir": cache_dir}
    try:
        a = inception_stats(image_dir, **options)
        b = inception_stats(ref_dir, **options)
        scores.add("fid", lambda: fid(a, b))
        kid_mean, kid_std = kid(a, b)
        scores.add("kid", lambda: kid_mean)
        scores.add("kid_std", lambda: kid_std)
        few = min(len(image_files(image_dir)), len(image_files(ref_dir)))
        if few < FID_MIN_IMAGES:
            scores.warnings.append(f"FID/KID on only {few} images per set (fewer than {FID_MIN_IMAGES}): strongly "
                                   "biased and noisy; compare them only between runs of the same size")
    except MetricUnavailable as err:
        scores.unavailable["fid"] = scores.unavailable["kid"] = err.reason
    try:
        pairs = _pairs(image_dir, ref_dir)
    except MetricInputError as err:
        for name in FULL_REFERENCE:
            scores.unavailable[name] = scores.unavailable[canonical(f"lpips_{lpips_net}")] = str(err)
        pairs = [(path, None) for path in image_files(image_dir)]
    for image_path, ref_path in pairs:
        score_image(scores, load_image(image_path), ref_path and load_image(ref_path), mask_path, lpips_net,
                    hole_value)
    return {"images": len(pairs)}


@click.command("score")
@click.argument("image", type=click.Path(exists=True, path_type=Path))
@click.option("--ref", type=click.Path(exists=True, path_type=Path), help="Clean reference image (or folder).")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Observation mask file (read with --mask-hole-value, as restore reads it); adds *_hole metrics.")
@click.option("--mask-hole-value", type=click.Choice(HOLE_VALUES), default=None,
              help="Which --mask pixels are holes (a restore run folder's mask.png: black).")
@click.option("--mask-convention", type=click.Choice(tuple(MASK_CONVENTIONS)), default=None,
              help=MASK_CONVENTION_HELP)
@click.option("--lpips-net", type=click.Choice(["alex", "vgg", "squeeze"]), default="alex", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where Inception statistics are cached (default: the user cache).")
def command(image: Path, ref: Path | None, mask: Path | None, mask_hole_value: str | None,
            mask_convention: str | None, lpips_net: str, cache_dir: Path | None) -> None:
    """Print every metric that applies to IMAGE as JSON; unavailable ones are named with the reason."""
    mask_hole_value = hole_value_for(mask_convention, mask_hole_value, cli=True)
    if mask is not None and ref is None:
        raise click.UsageError("--mask scores the hole against a reference: give --ref too")
    if mask is None and mask_hole_value is not None:
        raise click.UsageError("--mask-hole-value says how to read a --mask file; give --mask too")
    if mask is not None:
        try:  # the same refusals, in the same words, as ganprior restore --mask
            observed_from_file(mask, mask_hole_value, names=CLI_NAMES)
        except ValueError as err:
            raise click.UsageError(str(err)) from None
    scores = Scores()
    report: dict = {"image": str(image), "ref": str(ref) if ref else None, "mask": str(mask) if mask else None}
    try:
        if image.is_dir():
            report.update(score_folders(scores, image, ref, mask, lpips_net, cache_dir, mask_hole_value))
        else:
            if ref is not None and ref.is_dir():
                raise MetricInputError("IMAGE is a file, so --ref must be a file too")
            scores.unavailable["fid"] = scores.unavailable["kid"] = "compare image sets: pass folders as IMAGE and --ref"
            score_image(scores, load_image(image), load_image(ref) if ref else None, mask, lpips_net,
                        mask_hole_value)
    except MetricInputError as err:
        raise click.ClickException(str(err)) from err
    report.update(scores.as_dict())
    for warning in scores.warnings:
        click.echo(f"warning: {warning}", err=True)
    report["conventions"] = CONVENTIONS
    click.echo(json.dumps(report, indent=2))
