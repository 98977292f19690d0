"""``ganprior morph A B``: morph between two reconstructions (latents and tuned generators interpolated).

Frames are shown at the photo size of A (``cli.jitter.PhotoMapping``). Each frame is the generator's
morph fused with A's observation weighted 1 - alpha plus with B's weighted alpha when both photos have
one size, so the first frame is A's ``restored.png`` and the last B's; otherwise the unfused generator
image mapped onto A's photo.
"""

from __future__ import annotations

from pathlib import Path

import click

from ganprior.cli.jitter import load_model_for, photo_mappings, reconstructions, source_options


@click.command("morph")
@click.argument("source_a", type=click.Path(exists=True, path_type=Path))
@click.argument("source_b", type=click.Path(exists=True, path_type=Path))
@source_options
@click.option("--frames", type=click.IntRange(min=2), default=11, show_default=True, help="Frames from A to B.")
@click.option("--fps", type=click.IntRange(min=1), default=8, show_default=True)
def command(source_a, source_b, model, weights, device, task, class_index, preset, steps, seed, out_dir, frames,
            fps) -> None:
    """Morph from A to B: frames PNGs, morph.gif (and morph.mp4 when imageio-ffmpeg is installed)."""
    import torch

    from ganprior.images import make_sheet
    from ganprior.manipulation import ManipulationError, morph, mp4_available, save_animation, save_frames

    sources = [source_a, source_b]
    prior = load_model_for(sources, model, weights, device)
    a, b = reconstructions(sources, prior, out_dir, task, class_index, preset, steps, seed)
    try:
        tiles = morph(prior, a, b, frames=frames, order="a-to-b")  # A first (DGP's own order runs B -> A)
    except ManipulationError as exc:
        raise click.ClickException(str(exc)) from exc
    map_a, map_b = photo_mappings(sources, prior, out_dir)
    alphas = [i / (frames - 1) for i in range(frames)]
    via_a = map_a(tiles)
    if map_b.prepared.observation.shape == map_a.prepared.observation.shape:
        weights = torch.tensor(alphas).view(-1, 1, 1, 1)
        images = (1 - weights) * via_a + weights * map_b(tiles)
    else:
        images = map_a(tiles, fused=False)
    save_frames(images, out_dir, "morph")
    make_sheet([list(images)], [f"alpha {alpha:.2f}" for alpha in alphas], out_dir / "morph_sheet.png")
    written = save_animation(images, out_dir / "morph.gif", fps=fps)
    if not mp4_available():
        click.echo("note: no MP4 (pip install imageio imageio-ffmpeg to get one)")
    click.echo(f"{frames} frames -> {out_dir} ({', '.join(p.name for p in written)})")
