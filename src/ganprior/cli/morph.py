"""``ganprior morph A B``: morph between two reconstructions (latents and tuned generators interpolated)."""

from __future__ import annotations

from pathlib import Path

import click

from ganprior.cli.jitter import load_model_for, reconstructions, source_options


@click.command("morph")
@click.argument("source_a", type=click.Path(exists=True, path_type=Path))
@click.argument("source_b", type=click.Path(exists=True, path_type=Path))
@source_options
@click.option("--frames", type=click.IntRange(min=2), default=11, show_default=True, help="Frames from A to B.")
@click.option("--fps", type=click.IntRange(min=1), default=8, show_default=True)
def command(source_a, source_b, model, weights, device, task, class_index, preset, steps, seed, out_dir, frames,
            fps) -> None:
    """Morph from A to B: frames PNGs, morph.gif (and morph.mp4 when imageio-ffmpeg is installed)."""
    from ganprior.images import make_sheet
    from ganprior.manipulation import ManipulationError, morph, mp4_available, save_animation, save_frames

    sources = [source_a, source_b]
    prior = load_model_for(sources, model, weights, device)
    a, b = reconstructions(sources, prior, out_dir, task, class_index, preset, steps, seed)
    try:
        images = morph(prior, a, b, frames=frames)
    except ManipulationError as exc:
        raise click.ClickException(str(exc)) from exc
    save_frames(images, out_dir, "morph")
    make_sheet([list(images)], [f"λ={i / (frames - 1):.2f}" for i in range(frames)], out_dir / "morph_sheet.png")
    written = save_animation(images, out_dir / "morph.gif", fps=fps)
    if not mp4_available():
        click.echo("note: no MP4 (pip install imageio imageio-ffmpeg to get one)")
    click.echo(f"{frames} frames -> {out_dir} ({', '.join(p.name for p in written)})")
