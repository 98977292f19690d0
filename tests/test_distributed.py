"""torchrun: ranks split the bench's (task, image) pairs without duplicates or gaps, the 2-process
CPU (gloo) run equals the single-process one, and a re-run resumes (computes no cell again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganprior.distributed import Launch, launched, rank_shard

BENCH = ["bench", "--methods", "wplus", "--tasks", "inpaint", "--images", "emoji-test", "--limit", "3",
         "--steps", "2", "--threads", "1", "--no-baselines"]


@pytest.mark.parametrize("shard", [(0, 1), (1, 3)])
def test_ranks_cover_a_shard_exactly_once(shard):
    plan = list(range(23))
    parts = [plan[k::n] for k, n in (rank_shard(shard, Launch(r, 2, r)) for r in range(2))]
    merged = sorted(x for part in parts for x in part)
    assert merged == plan[shard[0]::shard[1]]
    assert len(merged) == len(set(merged))


def test_launch_read_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched() == Launch(3, 4, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launched() is None


def _run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _rows(out: Path) -> list[dict]:
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [{k: v for k, v in row.items() if k not in ("seconds", "timings")} for row in rows]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_equal_one(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    _run(["-m", "ganprior", *BENCH, "--out", str(single)], tmp_path)
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ganprior"]
    _run([*torchrun, *BENCH, "--out", str(multi)], tmp_path)
    assert _rows(single) == _rows(multi) and len(_rows(multi)) == 3
    assert (single / "table.md").read_text() == (multi / "table.md").read_text()
    cells = sorted((multi / "cells").rglob("*.json"))
    assert len(cells) == 3
    stamps = [p.stat().st_mtime_ns for p in cells]
    _run([*torchrun, *BENCH, "--out", str(multi)], tmp_path)  # resume: nothing is recomputed
    assert [p.stat().st_mtime_ns for p in cells] == stamps
    assert _rows(single) == _rows(multi)
