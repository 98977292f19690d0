"""``ganprior transfer SOURCE --classes ...``: a reconstruction re-rendered under other classes, shown as the
restoration was (photo size, fused with its observation: ``cli.jitter.PhotoMapping``)."""

from __future__ import annotations

from pathlib import Path

import click

from ganprior.cli.jitter import load_model_for, photo_mappings, reconstructions, source_options


def parse_classes(spec: str) -> list[int]:
    """``"151-160,207"`` -> [151, ..., 160, 207]."""
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise click.BadParameter(f"{spec!r}: write class indices and ranges, e.g. 151-160,207") from None
    if not out:
        raise click.BadParameter("give at least one class")
    return out


@click.command("transfer")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@source_options
@click.option("--classes", "classes_spec", required=True,
              help="Target classes: indices and ranges, e.g. 151-293 (ImageNet dogs, as in DGP) or 7,8,9.")
def command(source, model, weights, device, task, class_index, preset, steps, seed, out_dir, classes_spec) -> None:
    """Re-render a reconstruction as other classes (category transfer)."""
    from ganprior.images import make_sheet
    from ganprior.manipulation import ManipulationError, save_frames, transfer

    classes = parse_classes(classes_spec)
    prior = load_model_for([source], model, weights, device)
    rec = reconstructions([source], prior, out_dir, task, class_index, preset, steps, seed)[0]
    try:
        images = photo_mappings([source], prior, out_dir)[0](transfer(prior, rec, classes))
    except (ManipulationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    save_frames(images, out_dir, "class")
    make_sheet([list(images)], [f"class {k}" for k in classes], out_dir / "transfer_sheet.png")
    click.echo(f"{len(classes)} classes -> {out_dir}")
