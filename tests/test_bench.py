"""The benchmark harness: runs, survives an interruption without recomputing anything, reports
tables that mark the right winner, and its paper protocols point at real models, tasks and numbers."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

import ganprior.api
from ganprior.bench import (PROTOCOLS, BenchConfig, BenchError, Cell, ImageSourceError, TaskSpec, best_columns, paired,
                            load_images, render_paired, render_table, run_benchmark)
from ganprior.bench.baselines import run_baseline
from ganprior.bench.runner import _validate, make_degraded
from ganprior.bench.table import paper_comparison
from ganprior.cli.main import cli
from ganprior.degradations import parse_task
from ganprior.images import save_image
from ganprior.loading.registry import REGISTRY
from test_methods import tiny_prior

TASKS = tuple(TaskSpec.from_string(t) for t in ("colorize", "inpaint", "sr4"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def prior():
    return tiny_prior()


def _config(out, **changes) -> BenchConfig:
    base = dict(methods=("cri", "wplus"), tasks=TASKS, images="emoji-test", limit=2, steps=2, perceptual="mse",
                out=str(out), fid_min_images=50)
    return BenchConfig(**{**base, **changes})


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_without_recomputing_and_matches_a_fresh_run(prior, tmp_path, monkeypatch):
    restore_calls = []
    real_restore = ganprior.api.restore

    def counting_restore(*args, **kwargs):
        restore_calls.append(kwargs["method"])
        return real_restore(*args, **kwargs)

    monkeypatch.setattr(ganprior.api, "restore", counting_restore)
    first: list[Cell] = []

    def stop_after_five(cell: Cell) -> None:
        first.append(cell)
        if len(first) == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_benchmark(_config(tmp_path / "a"), prior=prior, model_label="tiny", progress=False,
                      after_cell=stop_after_five)
    calls_before = len(restore_calls)
    second: list[Cell] = []
    results = run_benchmark(_config(tmp_path / "a"), prior=prior, model_label="tiny", progress=False,
                            after_cell=second.append)

    # 2 images x (2 methods + input baseline + telea for inpaint + bicubic for sr4) = 2 x (3 + 4 + 4) = 22 cells
    assert len(results["rows"]) == 22
    assert not set(first) & set(second), "a finished cell was computed again"
    assert len(first) + len(second) == 22
    assert len(restore_calls) == 12 and calls_before == sum(c.column in ("cri", "wplus") for c in first)

    fresh = run_benchmark(_config(tmp_path / "b"), prior=prior, model_label="tiny", progress=False)
    assert (tmp_path / "a" / "table.md").read_text() == (tmp_path / "b" / "table.md").read_text()
    assert [r["values"] for r in results["rows"]] == [r["values"] for r in fresh["rows"]]

    out = tmp_path / "a"
    stored = json.loads((out / "results.json").read_text())  # strict JSON (no NaN/Infinity)
    assert stored["seed"] == 0 and stored["versions"]["torch"] == torch.__version__
    cri_psnr = stored["aggregates"]["inpaint"]["cri"]["psnr_hole"]
    assert cri_psnr["n"] == 2 and cri_psnr["mean"] is not None and cri_psnr["std"] >= 0
    assert "50 images" in stored["unavailable"]["sr4"]["fid"]  # too few images: a reason, not a number
    with open(out / "per_image.csv") as f:
        assert len(list(csv.DictReader(f))) == 22
    for task in ("colorize", "inpaint", "sr4"):
        assert (out / "sheets" / f"{task}-01.png").is_file()
    assert "| colorize | PSNR ↑ |" in (out / "table.md").read_text()

    # a changed setting (steps) recomputes the methods but keeps the baselines
    recomputed: list[Cell] = []
    run_benchmark(_config(out, steps=3), prior=prior, model_label="tiny", progress=False,
                  after_cell=recomputed.append)
    assert {c.column for c in recomputed} == {"cri", "wplus"} and len(recomputed) == 12


def test_shards_split_the_cells_between_them_and_an_unsharded_rerun_only_assembles(prior, tmp_path):
    out = tmp_path / "shared"
    per_shard: list[list[Cell]] = [[], []]
    for k in (0, 1):
        partial = run_benchmark(_config(out), prior=prior, model_label="tiny", progress=False,
                                after_cell=per_shard[k].append, shard=(k, 2))
        assert "unsharded" in partial["unavailable"]["sr4"]["fid"]  # FID is left to the assembly run
    assert per_shard[0] and per_shard[1] and not set(per_shard[0]) & set(per_shard[1])
    assembled: list[Cell] = []
    results = run_benchmark(_config(out), prior=prior, model_label="tiny", progress=False,
                            after_cell=assembled.append)
    assert "50 images" in results["unavailable"]["sr4"]["fid"]  # the assembly run does score the sets
    assert assembled == [] and len(results["rows"]) == 22 == len(per_shard[0]) + len(per_shard[1])
    cri = [r for r in results["rows"] if r["column"] == "cri"]
    assert cri and all({"start_loss", "w_avg_loss", "offset_norm"} <= set(r["extras"]) for r in cri)  # diagnostics
    fresh = run_benchmark(_config(tmp_path / "fresh"), prior=prior, model_label="tiny", progress=False)
    assert [r["values"] for r in results["rows"]] == [r["values"] for r in fresh["rows"]]
    with pytest.raises(BenchError, match="shard"):
        run_benchmark(_config(out), prior=prior, progress=False, shard=(2, 2))


def test_cli_rejects_a_malformed_shard_or_thread_count(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "--shard", "2/2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "0 <= K < N" in result.output
    result = CliRunner().invoke(cli, ["bench", "--threads", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--threads" in result.output


def _synthetic_results(psnr: dict, lpips: dict) -> dict:
    columns = list(psnr)
    return {
        "tasks": [{"name": "sr4", "measures": ["psnr", "lpips"]}],
        "columns": {"sr4": columns},
        "aggregates": {"sr4": {c: {"psnr": {"mean": psnr[c]}, "lpips": {"mean": lpips[c]}} for c in columns}},
        "unavailable": {"sr4": {"lpips": "backbone weights not present"}},
    }


def _cells(table: str, measure: str) -> list[str]:
    line = next(l for l in table.splitlines() if f"| {measure}" in l)
    return [c.strip() for c in line.strip("|").split("|")][2:]


def test_table_bolds_the_best_value_per_row_in_the_right_direction():
    table = render_table(_synthetic_results(psnr={"bicubic": 20.0, "cri": 23.456, "pti": 22.0},
                                            lpips={"bicubic": 0.30, "cri": 0.25, "pti": None}))
    assert _cells(table, "PSNR ↑") == ["20.00", "**23.46**", "22.00"]  # higher is better
    assert _cells(table, "LPIPS ↓") == ["0.3000", "**0.2500**", "n/a[^1]"]  # lower is better; n/a never wins
    assert "[^1]: LPIPS: backbone weights not present" in table
    assert best_columns({"a": 1.0, "b": 1.0, "c": 2.0}, higher_is_better=False) == {"a", "b"}  # ties
    assert best_columns({"a": None}, higher_is_better=True) == set()


def test_paper_comparison_converts_units_and_matches_columns():
    protocol = PROTOCOLS["dgp-imagenet-biggan128"]
    results = {"aggregates": {"inpaint": {"dgp": {"ssim_hole": {"mean": 0.5}, "psnr_hole": {"mean": 17.0}}},
                              "sr4": {"dgp-mse": {"psnr": {"mean": 23.0}}}}}
    rows = {(r["table"], r["measure"], r["method"]): r for r in paper_comparison(results, protocol)}
    ssim = rows[("DGP Table 2", "ssim_hole", "dgp")]
    assert ssim["paper"] == pytest.approx(0.4589) and ssim["delta"] == pytest.approx(0.5 - 0.4589)
    assert rows[("DGP Table 3", "psnr", "dgp-mse")]["paper"] == pytest.approx(23.30)
    assert ("DGP Table 2", "psnr_hole", "DIP") not in rows  # methods we did not run are not compared


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocols_reference_existing_models_tasks_and_methods(name):
    protocol = PROTOCOLS[name]
    spec = REGISTRY[protocol.model]
    assert spec.resolution == protocol.resolution
    config = BenchConfig.from_protocol(name, steps=5)
    assert config.steps == 5 and config.preset == "official" and config.model == protocol.model
    _validate(config)  # methods registered (or variants of registered ones), tasks parse, measures known
    for task in protocol.tasks:
        degradation = parse_task(task.task, mask=task.mask, image_size=(protocol.resolution,) * 2,
                                 sr_kernel=task.sr_kernel)
        assert degradation.observed_size((protocol.resolution,) * 2)[0] >= 8
    assert all(t.score == "raw" for t in protocol.tasks if t.task == "reconstruct")  # fused = the input itself
    ran = {t.name for t in protocol.tasks}
    assert any(task in ran for table in protocol.tables for task in table.values)


def _printed(value: float, row: dict) -> str:
    digits = max(len(repr(v).partition(".")[2]) for v in row.values())
    return f"{value:.{digits}f}"


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_paper_numbers_appear_in_the_paper_text(name, official_dir):
    paper_file = {"cri": "cri-aaai2023.txt", "dgp": "dgp-eccv2020-tpami.txt"}[name.split("-")[0]]
    text = (official_dir.parents[1] / "papers" / paper_file).read_text()
    numbers = set(re.findall(r"\d+\.\d+", text))
    for table in PROTOCOLS[name].tables:
        assert table.ref.split()[-1] in text  # "Table N"
        for by_measure in table.values.values():
            for row in by_measure.values():
                missing = [v for v in row.values() if _printed(v, row) not in numbers]
                assert not missing, f"{table.ref}: {missing} not in {paper_file}"


def test_image_sources_folder_list_and_errors(tmp_path):
    img = torch.linspace(-1, 1, 3 * 40 * 60).reshape(1, 3, 40, 60)
    for stem in ("b", "a"):
        save_image(img, tmp_path / "imgs" / f"{stem}.png")
    images = load_images(tmp_path / "imgs", 32)
    assert [i.id for i in images] == ["a", "b"] and images[0].clean.shape == (1, 3, 32, 32)
    assert images[0].label is None
    (tmp_path / "list.txt").write_text("# DGP style\nimgs/a.png 7\nimgs/b.png\n")
    listed = load_images(tmp_path / "list.txt", 16, limit=2)
    assert [(i.id, i.label) for i in listed] == [("a", 7), ("b", None)]
    (tmp_path / "bad.txt").write_text("imgs/a.png seven\n")
    with pytest.raises(ImageSourceError, match="integer label"):
        load_images(tmp_path / "bad.txt", 16)
    with pytest.raises(ImageSourceError, match="neither a folder"):
        load_images(tmp_path / "nope", 16)
    emoji = load_images("emoji-test", 32, limit=3)
    assert len(emoji) == 3 and all(i.label is not None for i in emoji)


def test_limit_spreads_over_classes_deterministically(tmp_path):
    from ganprior.data.emoji import load_emoji_test

    n_classes = len(load_emoji_test(32).classes)
    picked = load_images("emoji-test", 32, limit=n_classes)
    assert sorted(i.label for i in picked) == list(range(n_classes))  # the first K would all be class 0
    assert [i.id for i in load_images("emoji-test", 32, limit=n_classes)] == [i.id for i in picked]
    other_seed = load_images("emoji-test", 32, limit=n_classes, seed=1)
    assert [i.id for i in other_seed] != [i.id for i in picked]
    two_rounds = load_images("emoji-test", 32, limit=2 * n_classes + 1, seed=3)
    counts = [sum(i.label == k for i in two_rounds) for k in range(n_classes)]
    assert sorted(counts) == [2] * (n_classes - 1) + [3]
    img = torch.zeros(1, 3, 16, 16)
    lines = []
    for k in range(6):
        save_image(img, tmp_path / f"{k}.png")
        lines.append(f"{k}.png {k // 3}")  # sorted by class: 0 0 0 1 1 1
    (tmp_path / "list.txt").write_text("\n".join(lines))
    assert sorted(i.label for i in load_images(tmp_path / "list.txt", 16, limit=2)) == [0, 1]
    assert [i.id for i in load_images(tmp_path, 16, limit=2)] == ["0", "1"]  # no labels: the first K


def test_degraded_inputs_are_seeded_and_telea_fills_the_hole(tmp_path):
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    clean = torch.stack([x, y, x * y]).unsqueeze(0) * 0.8
    spec = TaskSpec("inpaint", "inpaint", mask="random-box")
    a, b = make_degraded(spec, clean, 3), make_degraded(spec, clean, 3)
    assert torch.equal(a.observation, b.observation) and a.hole is not None
    assert not torch.equal(make_degraded(spec, clean, 4).mask, a.mask)
    size = (32, 32)
    hole_error = {name: float(((run_baseline(name, a.observation, a.degradation, size) - clean) ** 2 * a.hole).sum())
                  for name in ("input", "telea")}
    assert hole_error["telea"] < 0.2 * hole_error["input"]


def test_bad_configurations_are_one_clear_error(tmp_path):
    with pytest.raises(BenchError, match="not available"):
        _validate(_config(tmp_path, methods=("nope",)))
    with pytest.raises(BenchError, match="task 'blurry'"):
        _validate(_config(tmp_path, tasks=(TaskSpec("blurry", "blurry"),)))
    result = CliRunner().invoke(cli, ["bench", "--methods", "nope", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "not available" in result.output
    result = CliRunner().invoke(cli, ["bench", "--protocol", "dgp-imagenet-biggan128", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "needs --images" in result.output
    listing = CliRunner().invoke(cli, ["bench", "--list-protocols"])
    assert listing.exit_code == 0 and all(name in listing.output for name in PROTOCOLS)
    assert "| inpaint | LPIPS ↓ | 0.2612 | 0.1219 | 0.1164 |" in listing.output


# ----- feat-dist: the model's own feature-network distance -------------------------------------------
@pytest.fixture(scope="module")
def emoji_feature_net():
    from ganprior.loading.registry import EMBEDDED_FEATURE_NET_FILE, embedded_dir
    from ganprior.models.feature_net import load_feature_net

    return load_feature_net(embedded_dir() / EMBEDDED_FEATURE_NET_FILE)


def _feat_dist(scorer, image: torch.Tensor, clean: torch.Tensor) -> float | None:
    return scorer(image, clean, clean, parse_task("colorize", image_size=(32, 32)), None).get("feat_dist")


def test_feat_dist_is_zero_on_identical_images_grows_with_noise_and_matches_its_definition(emoji_feature_net):
    from types import SimpleNamespace

    from ganprior.bench.scoring import ImageScorer

    scorer = ImageScorer(("feat_dist",), prior=SimpleNamespace(feature_net=emoji_feature_net))
    clean = load_images("emoji-test", 32, limit=1)[0].clean
    assert _feat_dist(scorer, clean, clean) == pytest.approx(0.0, abs=1e-9)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    noisy = [(clean + sigma * noise).clamp(-1, 1) for sigma in (0.02, 0.05, 0.1, 0.2, 0.4)]
    values = [_feat_dist(scorer, x, clean) for x in noisy]
    assert values[0] > 0 and all(a < b for a, b in zip(values, values[1:])), values
    # the definition, written out: unit-normalised channels, squared difference summed over channels,
    # mean over space, summed over the four feature maps
    with torch.no_grad():
        fa, fb = emoji_feature_net(noisy[2]), emoji_feature_net(clean)
    unit = [(x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)) for x, y in zip(fa, fb)]
    expected = sum(float((x - y).square().sum(1).mean()) for x, y in unit)
    assert len(fa) == 4 and values[2] == pytest.approx(expected, rel=1e-4)
    assert _feat_dist(scorer, noisy[2], clean) == pytest.approx(_feat_dist(scorer, clean, noisy[2]), rel=1e-5)


def test_feat_dist_is_na_with_a_reason_for_a_model_without_a_feature_net(prior):
    from ganprior.bench.scoring import MEASURES, ImageScorer, default_measures

    assert "feat_dist" in default_measures("colorize") and "LPIPS" not in MEASURES["feat_dist"].label
    scorer = ImageScorer(("psnr", "feat_dist"), prior=prior)
    clean = torch.zeros(1, 3, 32, 32)
    values = scorer(clean, clean, clean, parse_task("colorize", image_size=(32, 32)), None)
    assert "psnr" in values and "feat_dist" not in values
    assert "feature network" in scorer.unavailable["feat_dist"]


def test_feat_dist_in_the_run_and_cells_follow_weights_and_per_task_options(tmp_path, emoji_feature_net):
    net_prior = tiny_prior()
    object.__setattr__(net_prior, "feature_net", emoji_feature_net)  # as attach_embedded_extras does
    tasks = (TaskSpec.from_string("colorize"), TaskSpec.from_string("sr4"))
    config = _config(tmp_path, methods=("wplus",), tasks=tasks, limit=1, steps=1)
    results = run_benchmark(config, prior=net_prior, model_label="tiny", progress=False)
    for task in ("colorize", "sr4"):
        for column in results["columns"][task]:
            assert results["aggregates"][task][column]["feat_dist"]["n"] == 1
    assert "| feat-dist (emoji-feature-net) ↓ |" in (tmp_path / "table.md").read_text()

    recomputed: list[Cell] = []
    changed = replace(config, task_options={"sr4": {"wplus": {"lr": 0.05}}})
    run_benchmark(changed, prior=net_prior, model_label="tiny", progress=False, after_cell=recomputed.append)
    assert recomputed == [Cell("sr4", "wplus", results["images"][0]["id"])]  # only that task's method cell

    recomputed.clear()
    with torch.no_grad():
        next(net_prior.G.parameters()).add_(0.01)  # other generator weights: no stale method cells
    run_benchmark(changed, prior=net_prior, model_label="tiny", progress=False, after_cell=recomputed.append)
    assert sorted(c.task for c in recomputed if c.column == "wplus") == ["colorize", "sr4"]
    with pytest.raises(BenchError, match="task_options"):
        _validate(replace(config, task_options={"inpaint": {"wplus": {}}}))


def test_build_script_bench_config_runs_every_method_on_every_task_of_the_embedded_model(tmp_path):
    import importlib.util
    from pathlib import Path

    from ganprior.methods import get_method_class
    from ganprior.methods.dgp_presets import schedule_for_task

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_embedded.py"
    spec = importlib.util.spec_from_file_location("build_embedded", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    config = build.bench_config(tiny_prior(c_dim=3), tmp_path, per_class=2, preset="paper", steps=100, seed=4)
    _validate(config)
    assert config.limit == 6 and config.seed == 4 and config.steps == 100 and config.baselines
    assert set(config.methods) == {"wplus", "pti", "dgp", "cri"} and config.perceptual == "feature-net"
    assert [t.name for t in config.tasks] == ["colorize", "inpaint", "sr4", "sr4+colorize"]
    for task in config.tasks:
        assert "feat_dist" in task.measures and "fid" in task.measures and "lpips" not in task.measures
        assert (task.mask == "center") == (task.name == "inpaint")
        dgp = get_method_class("dgp")(table="paper", schedule=schedule_for_task(task.task),
                                      **config.task_options[task.name]["dgp"])
        assert not any(stage.instance_norm for stage in dgp.plan()[1])  # a StyleGAN2 has no BN to swap


def test_ssimc_sees_colour_on_colorization_tasks():
    """Luma SSIM gives the grey input ~1.0 on colorization; the bench adds ssimc there, which does not.
    ``ssim`` means the luma SSIM for every task, as in ``ganprior score`` (``metrics.registry``)."""
    from ganprior.bench.scoring import ImageScorer, default_measures

    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    scorer = ImageScorer(("ssim", "ssimc"))
    colorize, inpaint = parse_task("colorize"), parse_task("inpaint", mask="center", image_size=(32, 32))
    grey_input = colorize(clean)
    assert "ssimc" in default_measures("colorize") and "ssimc" not in default_measures("inpaint")
    assert scorer(grey_input, clean, grey_input, colorize, None)["ssimc"] < 0.9
    assert scorer(grey_input, clean, grey_input, colorize, None)["ssim"] > 0.95  # luma: blind to colour
    assert scorer(clean, clean, grey_input, colorize, None)["ssimc"] == pytest.approx(1.0)
    assert scorer(clean, clean, inpaint(clean), inpaint, None)["ssim"] == pytest.approx(1.0)


def _rows(column: str, values: list[float], measure: str = "feat_dist") -> list[dict]:
    return [{"task": "sr4", "column": column, "image": f"im{i}", "values": {measure: v}} for i, v in enumerate(values)]


def test_paired_comparison_follows_the_measure_direction_and_resolves_only_consistent_wins():
    base = [0.50, 0.61, 0.42, 0.73, 0.55, 0.66, 0.48, 0.59]
    better = [v - 0.05 - 0.01 * i for i, v in enumerate(base)]  # lower feat-dist on every image
    c = paired(_rows("cri", better) + _rows("wplus", base), "sr4", "feat_dist", "cri", "wplus")
    assert c.n == 8 and c.a_better == 8 and c.mean_diff == pytest.approx(-0.085) and c.resolved
    noisy = [v + (0.05 if i % 2 else -0.05) for i, v in enumerate(base)]  # wins half, loses half
    d = paired(_rows("cri", noisy) + _rows("wplus", base), "sr4", "feat_dist", "cri", "wplus")
    assert d.a_better == 4 and abs(d.mean_diff) < 1e-9 and not d.resolved
    e = paired(_rows("cri", better, "psnr") + _rows("wplus", base, "psnr"), "sr4", "psnr", "cri", "wplus")
    assert e.a_better == 0  # PSNR: higher is better, so lower values lose
    assert "cri vs wplus" in render_paired([c, d]) and "8/8" in render_paired([c])
    with pytest.raises(ValueError, match="no image has both"):
        paired(_rows("cri", better), "sr4", "feat_dist", "cri", "wplus")
