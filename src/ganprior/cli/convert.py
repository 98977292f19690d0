"""``ganprior convert SRC DST``: official checkpoint -> our pickle-free safetensors format."""

from __future__ import annotations

from pathlib import Path

import click

from ganprior.atomic import atomic_write_bytes


@click.command("convert")
@click.argument("src")
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
def command(src: str, dst: Path) -> None:
    """Convert SRC (network pickle, DGP BigGAN G_ema_*.pth with D_*.pth beside it, or a registered name) to DST.safetensors.

    Nothing stored in SRC is executed; DST loads without any pickle.
    """
    from ganprior.loading import LOAD_ERRORS, NATIVE_SUFFIX, convert, is_native_path, load_native, resolve

    if dst.suffix != NATIVE_SUFFIX:
        raise click.BadParameter(f"must end in {NATIVE_SUFFIX}", param_hint="DST")
    try:
        source = resolve(src)
        if is_native_path(source):  # e.g. the embedded emoji32: nothing to convert, only to copy
            prior = load_native(source)  # checks it really is one before anything is written
            if dst.resolve() != source.resolve():
                atomic_write_bytes(dst, source.read_bytes())
            click.echo(f"{src} is already in ganprior's native format ({source}); copied it to {dst} "
                       f"(use --model {src} directly; nothing needed converting)")
            out = dst
        else:
            out = convert(source, dst)
            prior = load_native(out)
    except LOAD_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    n_params = sum(t.numel() for t in prior.state_dict().values())
    click.echo(f"wrote {out}: {prior.family}, {prior.resolution}x{prior.resolution}, {prior.c_dim} classes, "
               f"{n_params:,} values, discriminator: {'yes' if prior.has_discriminator else 'no'}")
