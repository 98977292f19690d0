"""The ``ganprior`` command: a click group whose subcommands are imported only when used.

Convention: subcommand ``<name>`` lives in ``ganprior/cli/<name>.py`` and exposes a click command
called ``command``. Register it in :data:`SUBCOMMANDS` with a one-line summary (shown by ``--help``
without importing the module, which keeps ``ganprior --help`` fast). Registered names whose module does
not exist yet are hidden; a module that fails to import only breaks its own command.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

#: name -> one-line summary for ``ganprior --help``.
SUBCOMMANDS: dict[str, str] = {
    "models": "List known models, their families, and which are cached here.",
    "convert": "Convert an official checkpoint to ganprior's safetensors format.",
    "restore": "Restore degraded images with a GAN prior (CRI, DGP).",
    "score": "Score restored images against ground truth.",
    "bench": "Run the benchmarks.",
    "train": "Train a generator (the embedded prior).",
    "demo": "Restore held-out images with the embedded model.",
    "jitter": "Generate variations of a restored image (DGP jittering).",
    "morph": "Morph between two images through the GAN prior (DGP).",
    "transfer": "Transfer an image to another class (DGP category transfer).",
    "data": "Prepare and inspect datasets.",
    "ui": "Serve a web page: paint a mask, restore live, compare, manipulate (needs ganprior[ui]).",
}


def _module_name(name: str) -> str:
    return f"{__package__}.{name}"


def _available(name: str) -> bool:
    return importlib.util.find_spec(_module_name(name)) is not None


def _broken_command(name: str, exc: Exception) -> click.Command:
    def fail() -> None:
        raise click.ClickException(f"the '{name}' command is unavailable: {type(exc).__name__}: {exc}")

    return click.Command(name, callback=fail, help=f"(unavailable: {exc})")


class LazyGroup(click.Group):
    """Lists :data:`SUBCOMMANDS` whose module exists; imports a module only when its command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in SUBCOMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS or not _available(cmd_name):
            return None
        try:
            module = importlib.import_module(_module_name(cmd_name))
            command = module.command
        except Exception as exc:  # noqa: BLE001 - one broken optional command must not break the others
            return _broken_command(cmd_name, exc)
        if not isinstance(command, click.Command):
            return _broken_command(cmd_name, TypeError(f"{_module_name(cmd_name)}.command is not a click command"))
        return command

    def invoke(self, ctx: click.Context):
        """A model file a command did not expect to be broken still ends as one line, never a traceback."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # imported only now: ganprior.loading imports torch (slow start, ganprior restore)
            from ganprior.loading.errors import CheckpointError, short

            if isinstance(exc, CheckpointError):
                raise click.ClickException(short(str(exc))) from exc
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ganprior")
def cli() -> None:
    """Restore degraded images by inverting a pretrained GAN (CRI, DGP)."""


if __name__ == "__main__":
    cli()
