"""``ganprior demo`` on the embedded model with a tiny step budget: files, table, CLI, offline."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from ganprior.cli.demo import TASKS, command, run_demo
from ganprior.loading.registry import EMBEDDED_FILE, embedded_dir

pytestmark = pytest.mark.skipif(not (embedded_dir() / EMBEDDED_FILE).is_file(), reason="embedded model not built yet")


@pytest.fixture
def offline(monkeypatch):
    """Any network access fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the demo tried to use the network")

    monkeypatch.setenv("GANPRIOR_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_demo_writes_sheets_and_a_complete_table(tmp_path, offline):
    summary = run_demo(tmp_path, n_images=2, steps=2, methods=("cri",), progress=False)
    for task in TASKS:
        assert (tmp_path / f"{task.replace('+', '_')}.png").stat().st_size > 0
    rows = {(r["task"], r["method"]): r for r in summary["rows"]}
    assert set(rows) == {(t, m) for t in TASKS for m in ("degraded input", "cri")}
    for row in rows.values():
        assert all(math.isfinite(row[k]) for k in ("psnr", "ssim", "feature_distance"))
    # colour is lost in the grey input: its feature distance to the clean image cannot be zero
    assert rows[("colorize", "degraded input")]["feature_distance"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == summary["rows"]
    table = (tmp_path / "summary.md").read_text()
    assert "| sr4+colorize | cri |" in table and "| inpaint | degraded input |" in table
    assert len(set(summary["classes"])) == 2


def test_demo_cli_runs_and_rejects_unknown_methods(tmp_path, offline):
    runner = CliRunner()
    result = runner.invoke(command, ["--out", str(tmp_path / "d"), "--images", "1", "--steps", "1", "--method", "cri"])
    assert result.exit_code == 0, result.output
    assert "| colorize | cri |" in result.output and (tmp_path / "d" / "summary.md").exists()
    bad = runner.invoke(command, ["--out", str(tmp_path / "e"), "--method", "nope"])
    assert bad.exit_code != 0 and "unknown method" in bad.output
