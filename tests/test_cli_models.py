"""The CLI skeleton (lazy subcommands), ``ganprior models`` (offline, cache-aware) and ``ganprior convert``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ganprior.cli import main
from ganprior.loading import load_native
from ganprior.loading.native import FamilyNotAvailableError, family_module


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("GANPRIOR_CACHE", str(root))
    monkeypatch.setenv("GANPRIOR_OFFLINE", "1")
    return root


def run(*args: str):
    return CliRunner().invoke(main.cli, list(args), catch_exceptions=False)


def test_help_lists_existing_commands_without_importing_them():
    code = ("import sys; from click.testing import CliRunner; from ganprior.cli.main import cli;"
            "r = CliRunner().invoke(cli, ['--help']); print(r.output);"
            "print('IMPORTED', sorted(m for m in sys.modules if m.startswith('ganprior.cli.') or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "models" in out and "convert" in out
    assert "IMPORTED ['ganprior.cli.main']" in out  # no subcommand module and no torch imported for --help


def test_unregistered_or_missing_modules_are_hidden(monkeypatch):
    monkeypatch.setitem(main.SUBCOMMANDS, "notyet", "A command whose module does not exist.")
    result = run("--help")
    assert "notyet" not in result.output
    assert run("notyet").exit_code != 0


def test_broken_module_only_breaks_itself(tmp_path, monkeypatch):
    (tmp_path / "ganprior_broken_cmd.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(main.SUBCOMMANDS, "broken", "Broken on purpose.")
    real = main._module_name
    monkeypatch.setattr(main, "_module_name", lambda name: "ganprior_broken_cmd" if name == "broken" else real(name))
    result = CliRunner().invoke(main.cli, ["broken"])
    assert result.exit_code == 1 and "the 'broken' command is unavailable: RuntimeError: boom at import" in result.output
    assert run("models", "--json").exit_code == 0


def test_models_offline_reports_cache(cache):
    fake = cache / "stylegan2-ada-cifar10" / "cifar10.pkl"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"pretend")
    result = run("models")
    assert result.exit_code == 0
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    row = lines["stylegan2-ada-cifar10"]
    assert row[1:6] == ["stylegan2", "32", "10", "yes", "unverified"] and row[-1] == str(fake)
    assert lines["stylegan2-ada-ffhq"][4] == "no"
    assert str(cache) in result.output


def test_models_json_and_family_filter(cache):
    data = json.loads(run("models", "--json", "--family", "biggan").output)
    assert data["cache_dir"] == str(cache)
    names = [m["name"] for m in data["models"]]
    assert names == ["biggan-dgp-128", "biggan-dgp-256", "biggan-dgp-ch64-256"]
    assert all(m["download"] == "manual" and not m["cached"] and m["hash"] == "unverified" for m in data["models"])
    cached = json.loads(run("models", "--json", "--cached").output)["models"]
    assert [m["name"] for m in cached if m["download"] != "embedded"] == []  # the built-in emoji32 is always here


def test_convert_official_pickle(official_dir, tmp_path, cache):
    try:
        family_module("stylegan2")
    except FamilyNotAvailableError as exc:
        pytest.skip(str(exc))
    dst = tmp_path / "sg2.safetensors"
    result = run("convert", str(official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl"), str(dst))
    assert result.exit_code == 0, result.output
    assert "stylegan2, 32x32, 0 classes" in result.output and "discriminator: yes" in result.output
    assert load_native(dst).resolution == 32


def test_convert_errors_are_one_line(tmp_path, cache):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(os.urandom(64))
    result = CliRunner().invoke(main.cli, ["convert", str(bad), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output
    result = CliRunner().invoke(main.cli, ["convert", "stylegan_xl-imagenet64", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 1 and str(cache / "stylegan_xl-imagenet64" / "imagenet64.pkl") in result.output
    result = CliRunner().invoke(main.cli, ["convert", str(bad), str(tmp_path / "out.pkl")])
    assert result.exit_code == 2 and "must end in .safetensors" in result.output
    assert not (tmp_path / "out.safetensors").exists()
