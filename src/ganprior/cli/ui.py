"""``ganprior ui``: serve the restoration page (Gradio) for one model, on this machine by default."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from pathlib import Path

import click


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@click.command("ui")
@click.option("--model", default=None, help="Model name or checkpoint path (default: the embedded model).")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Explicit local checkpoint for --model.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1 = this machine only).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where run folders go (default: a new temporary folder).")
def command(model, weights, host, port, device, out_dir) -> None:
    """Serve a web page to paint masks, restore, compare and manipulate."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline; sends nothing anywhere
    try:
        from ganprior.ui.app import build_app
        from ganprior.ui.handlers import Studio, warm_up
    except ImportError as exc:
        raise click.ClickException(f"the UI needs the ui extra: pip install 'ganprior[ui]' ({exc})") from exc
    from ganprior.api import load_prior
    from ganprior.loading import LOAD_ERRORS

    if not _port_free(host, port):
        raise click.UsageError(f"--port {port}: the port is already in use on {host}; choose another")
    threading.Thread(target=warm_up, daemon=True, name="ganprior-ui-warm-up").start()
    try:
        prior = load_prior(model, weights=weights, device=device)  # remembers its name (run.json, notes)
    except LOAD_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    root = out_dir or Path(tempfile.mkdtemp(prefix="ganprior-ui-"))
    root.mkdir(parents=True, exist_ok=True)
    studio = Studio(prior, prior.model_name, root)
    click.echo(f"run folders go to {root}")
    build_app(studio).queue().launch(server_name=host, server_port=port, allowed_paths=[str(root.resolve())],
                                     footer_links=[], quiet=False)
