"""``ganprior data build`` / ``build-faces``: rebuild the emoji or cartoon-faces dataset and its shipped test split."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ganprior.data.cartoon_faces import FacesDataError, build_faces_dataset
from ganprior.data.emoji import (
    DEFAULT_MAX_SKIN_VARIANTS,
    EmojiDataError,
    build_emoji_dataset,
)


@click.group("data")
def command() -> None:
    """Datasets of the embedded prior."""


@command.command("build")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/cache"),
              show_default=True, help="Where the npm tarballs and emoji_{32,64}.npz go.")
@click.option("--asset", "asset_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the held-out test split goes (default: the package's assets/emoji_test.npz).")
@click.option("--max-skin-variants", type=click.IntRange(0, 25), default=DEFAULT_MAX_SKIN_VARIANTS,
              show_default=True, help="Skin-tone renditions kept per emoji (they would dominate People & Body).")
def build(cache_dir: Path, asset_path: Path | None, max_skin_variants: int) -> None:
    """Fetch the pinned emoji packages with `npm pack` and build the dataset reproducibly."""
    try:
        counts = build_emoji_dataset(cache_dir, asset_path, max_skin_variants)
    except EmojiDataError as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(counts, indent=2))


@command.command("build-faces")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/cache"),
              show_default=True, help="Where faces_{32,64}.npz go.")
@click.option("--asset", "asset_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the held-out test split goes (default: the package's assets/faces32/faces_test.npz).")
@click.option("--train-per-style", type=click.IntRange(min=1), default=15000, show_default=True,
              help="Training images per style (seeds 0..N-1); the data is procedural, so more is only time.")
@click.option("--test-per-style", type=click.IntRange(min=1), default=300, show_default=True,
              help="Held-out images per style (seeds from 1e9, disjoint from training; 300 is the shipped split).")
def build_faces(cache_dir: Path, asset_path: Path | None, train_per_style: int, test_per_style: int) -> None:
    """Render the cartoon-faces dataset (DiceBear avataaars + facesjs) with the pinned node renderer."""
    try:
        counts = build_faces_dataset(cache_dir, train_per_style, test_per_style, asset_path)
    except FacesDataError as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(counts, indent=2))
