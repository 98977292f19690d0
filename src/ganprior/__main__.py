"""``python -m ganprior ...`` (what ``torchrun ... -m ganprior bench|restore`` starts on every rank)."""

from ganprior.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="ganprior")
