"""``restore_samples``: K restorations of one photo with the embedded model, each consistent, differing in the hole."""

from __future__ import annotations

import json

import pytest
import torch

import ganprior
from ganprior.bench.sources import load_images
from ganprior.degradations import to_gray
from ganprior.samples.restore import SamplesError, check_samples


@pytest.fixture(scope="module")
def photo():
    image = load_images("emoji-test", 32, limit=2)[1]
    return image.clean, image.label


def _samples(photo, method, task="inpaint", k=3, **kw):
    clean, label = photo
    mask = "center" if "inpaint" in task else None
    return ganprior.restore_samples(clean, samples=k, task=task, mask=mask, method=method, steps=6, progress=False,
                                    value_range=(-1, 1), class_index=label, **kw)


@pytest.mark.parametrize("method", ["cri", "wplus", "pulse"])
def test_samples_agree_where_observed_and_differ_in_the_hole(photo, method, one_thread):
    result = _samples(photo, method)
    mask = result.first.mask.bool().expand_as(result.uncertainty)
    assert float(result.uncertainty[mask].max()) == 0.0
    assert float(result.uncertainty[~mask].mean()) > 1.0  # grey levels: different fills
    assert all(r.consistency_rmse <= 0.2 for r in result.results)


def test_cri_samples_start_from_distinct_centroids_best_first(photo, one_thread):
    result = _samples(photo, "cri", k=4)
    extras = [r.result.extras for r in result.results]
    chosen = [e["centroid_index"] for e in extras]
    scores = extras[0]["centroid_scores"]
    assert len(set(chosen)) == 4
    assert chosen == sorted(range(len(scores)), key=lambda i: scores[i])[:4]


def test_colorize_samples_share_the_grey(photo, one_thread):
    result = _samples(photo, "cri", task="colorize")
    greys = to_gray(torch.cat([r.image for r in result.results]))
    assert float((greys - greys[:1]).abs().max()) * 127.5 <= 1.0
    assert float(result.uncertainty.mean()) > 1.0  # ... and differ in colour (grey levels)


def test_sr_every_sample_gives_the_observation_back(photo, one_thread):
    result = _samples(photo, "wplus", task="sr4")
    first = result.first
    from ganprior.api import CONSISTENT_FUSION
    from ganprior.degradations import parse_task

    op = parse_task("sr4", **CONSISTENT_FUSION)
    for r in result.results:
        error = (op(r.image) - first.observation) * 127.5
        assert float(error.pow(2).mean().sqrt()) <= 1.0  # grey levels
        # single pixels may miss by a little more where the observation is saturated white: an image clamped
        # to [-1, 1] cannot average to exactly 1.0 through a kernel with negative lobes (measured max 1.15)
        assert float(error.abs().max()) <= 1.5


def test_save_writes_the_sample_files(photo, tmp_path, one_thread):
    result = _samples(photo, "cri", k=2)
    out = result.save(tmp_path / "run")
    for name in ("restored.png", "run.json", "mean.png", "uncertainty.png", "hallucination.png",
                 "samples_sheet.png", "samples/001.png", "samples/002.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "samples.json").read_text())
    assert summary["count"] == 2 and len(summary["samples"]) == 2
    assert summary["samples"][1]["start"]["centroid_index"] != summary["samples"][0]["start"]["centroid_index"]


@pytest.mark.parametrize("bad", [0, -1, 17, 2.5, True, "4"])
def test_bad_sample_counts_are_refused(bad):
    with pytest.raises(SamplesError, match="samples must be a whole number"):
        check_samples(bad)


def test_cli_samples_writes_the_maps_and_reuses_only_the_same_count(photo, tmp_path, one_thread):
    from click.testing import CliRunner

    from ganprior.cli.main import cli
    from ganprior.images import save_image

    save_image(photo[0], tmp_path / "e.png")
    args = ["restore", str(tmp_path / "e.png"), "--task", "inpaint", "--mask", "center", "--method", "cri",
            "--steps", "4", "--out", str(tmp_path / "out"), "--threads", "1"]
    first = CliRunner().invoke(cli, [*args, "--samples", "3"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    run = tmp_path / "out" / "e"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["001.png", "002.png", "003.png"]
    assert json.loads((run / "samples.json").read_text())["count"] == 3
    again = CliRunner().invoke(cli, [*args, "--samples", "3"], catch_exceptions=False)
    assert "already complete" in again.output
    other = CliRunner().invoke(cli, [*args, "--samples", "2"], catch_exceptions=False)
    assert other.exit_code == 0 and "does not match" in other.output
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["001.png", "002.png"]
    bad = CliRunner().invoke(cli, [*args, "--samples", "0"])
    assert bad.exit_code == 2 and "--samples" in bad.output


def test_dgp_samples_start_from_its_best_candidates_in_order(photo, one_thread):
    result = _samples(photo, "dgp", k=3, options={"select_num": 12})
    starts = [s["start"] for s in result.summary()["samples"]]
    assert [s["candidate_rank"] for s in starts] == [0, 1, 2]
    assert len({s["candidate"] for s in starts}) == 3
    mask = result.first.mask.bool().expand_as(result.uncertainty)
    assert float(result.uncertainty[mask].max()) == 0.0 and float(result.uncertainty[~mask].mean()) > 1.0
