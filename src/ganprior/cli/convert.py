"""``ganprior convert SRC DST``: official checkpoint -> our pickle-free safetensors format."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("src")
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
def command(src: str, dst: Path) -> None:
    """Convert SRC (network pickle, DGP BigGAN G_ema_*.pth with D_*.pth beside it, or a registered name) to DST.safetensors.

    Nothing stored in SRC is executed; DST loads without any pickle.
    """
    from ganprior.loading import LOAD_ERRORS, NATIVE_SUFFIX, convert, load_native

    if dst.suffix != NATIVE_SUFFIX:
        raise click.BadParameter(f"must end in {NATIVE_SUFFIX}", param_hint="DST")
    try:
        out = convert(src, dst)
        prior = load_native(out)
    except LOAD_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    n_params = sum(t.numel() for t in prior.state_dict().values())
    click.echo(f"wrote {out}: {prior.family}, {prior.resolution}x{prior.resolution}, {prior.c_dim} classes, "
               f"{n_params:,} values, discriminator: {'yes' if prior.has_discriminator else 'no'}")
