"""scripts/fid_curve.py: which snapshots get scored, CPU-hours from a run's log, and the plot."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fid_curve():
    spec = importlib.util.spec_from_file_location("fid_curve", ROOT / "scripts" / "fid_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pending_scores_the_shipped_model_then_snapshots_spaced_by_kimg(fid_curve, tmp_path):
    (tmp_path / "snapshots").mkdir()
    for iteration in (12000, 15000, 18000, 21000):  # 384, 480, 576, 672 kimg
        (tmp_path / "snapshots" / f"ckpt-{iteration:07d}.pt").touch()
    args = argparse.Namespace(ckpt=None, run=tmp_path, every_kimg=150)
    names = [i for _, i in fid_curve.pending(args, [], ["fid_held_out"])]
    assert names == [fid_curve.SHIPPED_ITERATION, 15000, 21000]
    logged = [{"iteration": fid_curve.SHIPPED_ITERATION, "kimg": 320.384, "fid_held_out": 121.0}]
    assert [i for _, i in fid_curve.pending(args, logged, ["fid_held_out"])] == [15000, 21000]
    # a point logged without the train reference is scored again when that is asked for
    assert [i for _, i in fid_curve.pending(args, logged, ["fid", "fid_held_out"])][0] == fid_curve.SHIPPED_ITERATION
    explicit = argparse.Namespace(ckpt=[tmp_path / "snapshots" / "ckpt-0012000.pt"], run=tmp_path, every_kimg=150)
    assert [i for _, i in fid_curve.pending(explicit, logged, ["fid_held_out"])] == [12000]


def test_cpu_hours_add_up_the_logged_iterations(fid_curve, tmp_path):
    log = tmp_path / "log.jsonl"
    records = [{"iter": 20, "s_per_it": 1.0}, {"iter": 40, "s_per_it": 2.0}, {"iter": 60, "s_per_it": 3.0},
               {"iter": 100, "s_per_it": 0.5}]  # a restart: 40 iterations logged in one window
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert fid_curve.training_cpu_hours(log, 60, base=1.0) == pytest.approx(1.0 + (20 * 2 + 20 * 3) / 3600)
    assert fid_curve.training_cpu_hours(log, 100, base=0.0) == pytest.approx((40 + 60 + 20) / 3600)


def test_plot_draws_both_panels(fid_curve, tmp_path):
    points = [{"kimg": 320.4, "cpu_hours": 1.03, "fid_held_out": 121.0, "samples": 2000},
              {"kimg": 480.0, "cpu_hours": 1.8, "fid_held_out": 110.0, "fid": 85.0, "samples": 2000}]
    fid_curve.plot(points, tmp_path / "curve.png")
    with Image.open(tmp_path / "curve.png") as image:
        assert image.size == (960, 400)
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 20)}
    assert fid_curve.COLOURS["vs held-out"] in colours and fid_curve.COLOURS["vs train"] in colours
