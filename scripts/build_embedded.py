"""Build the embedded default model ``emoji32`` from a generator checkpoint, and measure it.

    python scripts/build_embedded.py --ckpt runs/emoji32/ckpt.pt

regenerates everything, stage by stage (``--stages`` picks some; the feature net does not depend on
the generator, so a new checkpoint only needs ``--stages model,banks,samples,fid,bench``):

  model        the generator + discriminator as ``assets/emoji32/model.safetensors`` (native format)
  feature-net  trains the emoji-feature-net on the train split -> ``assets/emoji32/feature_net.safetensors``
  banks        CRI centroid banks of every class -> ``assets/emoji32/centroids.safetensors``
  samples      one sample sheet per category -> ``docs/embedded_model/``
  fid          FID of generated samples vs the train split and vs the held-out split
  bench        PSNR / SSIM / feature-net distance / FID per task and method on held-out images
  ablation     CRI without its centroid start / offset regulariser / pivotal tuning, and W+ with CRI's
               pixel-MSE weight, on the bench's images; CRI paired per image with every column (needs ``bench``)

``--ckpt`` is a native ``.safetensors`` prior (``prior.safetensors`` of a ``ganprior train`` run), a run
folder holding one, or a training ``ckpt.pt`` (its EMA generator is used). Every result goes to
``docs/embedded_model/results.json`` and the tables of ``docs/embedded_model.md`` (``--docs``) are
rewritten between their ``<!-- build:NAME -->`` markers. Runs on the CPU, ``--threads`` (default 1: two
threads are 2.6x *slower* while another process holds the second core). Stages may run in separate
processes at the same time (each writes only its own key of ``results.json``): on two free cores run
``--stages model,banks,samples`` first, then ``--stages fid`` and ``--stages bench`` side by side.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ganprior.bench import EMOJI_TEST, BenchConfig, Paired, TaskSpec, Variant, paired, render_paired, run_benchmark
from ganprior.bench.runner import TABLE_FILE, BenchError, parse_shard
from ganprior.cli.demo import restore_options
from ganprior.data.emoji import CATEGORIES, load_emoji_npz, load_emoji_test
from ganprior.degradations import parse_task
from ganprior.loading import attach_embedded_extras, load_native, save_native
from ganprior.loading.registry import (DEFAULT_MODEL, EMBEDDED_BANKS_FILE, EMBEDDED_FEATURE_NET_FILE, EMBEDDED_FILE,
                                       embedded_dir)
from ganprior.methods import PRESETS
from ganprior.methods.presets import preset_options
from ganprior.methods.centroids import centroid_bank, model_fingerprint, save_banks
from ganprior.models import feature_net as fnet
from ganprior.models.stylegan2 import StyleGAN2Prior
from ganprior.training.checkpoint import load_checkpoint
from ganprior.training.loop import save_sheet

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "embedded_model.md"
STAGES = ("model", "feature-net", "banks", "samples", "fid", "bench", "ablation")
BENCH_TASKS = ("colorize", "inpaint", "sr4", "sr4+colorize")
BENCH_MASK = "center"
BENCH_METHODS = ("wplus", "pti", "dgp", "cri")
#: default --bench-steps: 1 image per class x 4 tasks x 4 methods is about 19 min on one free core
BENCH_STEPS = 100
#: CRI with one of its parts taken out, and W+ given CRI's loss: a one-cluster k-means bank is the class's
#: mean latent (the usual w_avg start); offset_weight 0 drops the L2 penalty on the W+ offset; no pivotal
#: tuning; W+ projection with CRI's pixel-MSE weight λ1 of the task (set per task in ``stage_ablation``)
ABLATION_VARIANTS = {"cri-wavg": Variant("cri", {"n_clusters": 1}), "cri-noreg": Variant("cri", {"offset_weight": 0.0}),
                     "cri-notune": Variant("cri", {"tuning_steps": 0}), "wplus-l2": Variant("wplus")}
ABLATION_MEASURES = ("feat_dist", "psnr")
#: scored on every task besides PSNR / SSIM (and the hole-only scores for inpainting)
BENCH_MEASURES = ("feat_dist", "consistency", "fid")
#: Inception images per forward pass: the fastest measured on this CPU (about 5.4 img/s per core-second
#: at 16 vs 4.8 at 32; the 299 px activations of bigger batches fall out of cache)
FID_BATCH = 16


# ----- inputs ---------------------------------------------------------------------------------------
def load_generator(ckpt: Path) -> StyleGAN2Prior:
    """The prior to ship from a native file, a run folder, or a training checkpoint's EMA generator."""
    if ckpt.is_dir():
        ckpt = ckpt / "prior.safetensors"
    if not ckpt.is_file():
        raise SystemExit(f"no checkpoint at {ckpt}")
    if ckpt.suffix == ".safetensors":
        return load_native(ckpt)
    state = load_checkpoint(ckpt)
    config = state["prior_config"]
    prior = StyleGAN2Prior(config["generator"], config.get("discriminator"))
    prior.G.load_state_dict(state["G_ema"])
    if prior.D is not None:
        prior.D.load_state_dict(state["D"])
    return prior.eval()


def source_of(ckpt: Path) -> dict:
    """What the shipped model was built from (kept in the native file's metadata)."""
    path = ckpt / "prior.safetensors" if ckpt.is_dir() else ckpt
    info: dict = {"file": str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else path.name,
                  "bytes": path.stat().st_size, "built_by": "scripts/build_embedded.py"}
    if path.suffix == ".safetensors":
        from ganprior.loading.native import read_native_metadata

        info["trained"] = read_native_metadata(path).get("source")
    return info


def to_images(uint8_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(uint8_nhwc).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# ----- stages -----------------------------------------------------------------------------------------
def stage_model(prior: StyleGAN2Prior, ckpt: Path, out: Path) -> dict:
    path = save_native(prior, out / EMBEDDED_FILE, source=source_of(ckpt))
    params = {name: sum(p.numel() for p in part.parameters()) for name, part in (("G", prior.G), ("D", prior.D))
              if part is not None}
    return {"bytes": path.stat().st_size, "parameters": params, "source": source_of(ckpt)}


def stage_feature_net(data: Path, out: Path, epochs: int, seed: int) -> dict:
    train = load_emoji_npz(data, "train")
    test = load_emoji_test(train.resolution)
    started = time.perf_counter()
    net, log = fnet.train_feature_net(train.images, train.labels, train.classes,
                                      fnet.TrainSettings(epochs=epochs, seed=seed))
    info = {"train_seconds": round(time.perf_counter() - started, 1), "epochs": epochs, "seed": seed,
            "train_images": len(train), "log": log, "held_out": held_out_accuracy(net, test.images, test.labels, seed)}
    fnet.save_feature_net(net, out / EMBEDDED_FEATURE_NET_FILE, info)
    return info


def held_out_accuracy(net: fnet.EmojiFeatureNet, images: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Accuracy on clean held-out images and on each restoration task's degraded version of them."""
    x = to_images(images)
    results = {"clean": fnet.accuracy(net, x, labels)}
    for task in BENCH_TASKS:
        degradation = parse_task(task, mask=BENCH_MASK if "inpaint" in task else None, image_size=x.shape[-2:],
                                 seed=seed)
        with torch.no_grad():
            results[task] = fnet.accuracy(net, degradation(x), labels)
    generator = torch.Generator().manual_seed(seed)
    results["random-augmentation"] = fnet.accuracy(net, fnet.degrade_randomly(x, generator), labels)
    return results


def stage_banks(prior: StyleGAN2Prior, out: Path, n_clusters: int, n_samples: int, seed: int) -> dict:
    started = time.perf_counter()
    banks = {k: centroid_bank(prior, k, n_clusters, n_samples, seed, cache=False)
             for k in tqdm(range(prior.c_dim), desc="centroid banks", unit="class")}
    path = save_banks(banks, out / EMBEDDED_BANKS_FILE, fingerprint=model_fingerprint(prior),
                      n_clusters=n_clusters, n_samples=n_samples, seed=seed)
    return {"n_clusters": n_clusters, "n_samples": n_samples, "seed": seed, "classes": prior.c_dim,
            "seconds": round(time.perf_counter() - started, 1), "bytes": path.stat().st_size}


@torch.no_grad()
def stage_samples(prior: StyleGAN2Prior, folder: Path, columns: int = 8, rows: int = 2, seed: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, name in enumerate(CATEGORIES[:prior.c_dim]):
        slug = re.sub(r"[^a-z]+", "-", name.lower()).strip("-")
        path = folder / f"samples_{k}_{slug}.png"
        save_sheet(prior.sample(columns * rows, classes=k, seed=seed + k), columns, path)
        files.append(path.name)
    return {"files": files, "folder": folder.name, "truncation_psi": 1.0, "seed": seed}


@torch.no_grad()
def generate(prior: StyleGAN2Prior, n: int, seed: int, batch: int = 250) -> torch.Tensor:
    """``n`` samples, classes uniform at random, truncation 1, constant noise (seeded)."""
    return torch.cat([prior.sample(min(batch, n - i), seed=seed + i) for i in
                      tqdm(range(0, n, batch), desc="generate", unit="batch")])


def reference_sets(data: Path, resolution: int) -> dict[str, torch.Tensor]:
    """The real image sets FID compares with: the whole train split and the held-out split."""
    return {"train": to_images(load_emoji_npz(data, "train").images),
            "held_out": to_images(load_emoji_test(resolution).images)}


def stage_fid(prior: StyleGAN2Prior, data: Path, n_samples: int, seed: int) -> dict:
    """FID of ``n_samples`` generated images vs the train and held-out splits.

    Inception features are cached on disk by image content (``metrics.fid.inception_stats``), so the
    reference splits cost their ~6,350 forward passes once per machine, not once per generator.
    """
    from ganprior.metrics.fid import InceptionFeatures, frechet_distance_of_features, inception_stats

    extractor = InceptionFeatures(device="cpu", batch_size=FID_BATCH)
    started = time.perf_counter()
    refs = {name: inception_stats(images, extractor=extractor)
            for name, images in reference_sets(data, prior.resolution).items()}
    ref_seconds = time.perf_counter() - started
    fake = inception_stats(generate(prior, n_samples, seed), extractor=extractor)
    fake_seconds = time.perf_counter() - started - ref_seconds
    distance = frechet_distance_of_features
    return {"samples": n_samples, "seed": seed, "truncation_psi": 1.0,
            "vs_train": distance(fake.features, refs["train"].features),
            "vs_held_out": distance(fake.features, refs["held_out"].features),
            "train_vs_held_out": distance(refs["train"].features, refs["held_out"].features),
            "train_images": len(refs["train"]), "held_out_images": len(refs["held_out"]),
            "seconds": {"references": round(ref_seconds, 1), "generated": round(fake_seconds, 1)},
            "threads": torch.get_num_threads(), "batch": FID_BATCH}


def bench_config(prior: StyleGAN2Prior, out: Path, per_class: int, preset: str, steps: int | None,
                 seed: int) -> BenchConfig:
    """The held-out benchmark as a ``ganprior bench`` run: ``per_class`` emoji-test images of every class,
    the four tasks, W+ / PTI / DGP / CRI with the feature-net perceptual, plus the classical baselines.

    DGP keeps its discriminator loss; its BigGAN-only switches (BN->IN swap, class-embedding tuning)
    are turned off per task, since the length of its per-stage lists depends on the task's schedule.
    """
    tasks = tuple(replace(TaskSpec.from_string(t, BENCH_MASK),
                          measures=("psnr", "ssim", *(("psnr_hole", "ssim_hole") if "inpaint" in t else ()),
                                    *BENCH_MEASURES))
                  for t in BENCH_TASKS)
    task_options = {t.name: {"dgp": restore_options(prior, "dgp", t.task, preset).get("options", {})}
                    for t in tasks}
    return BenchConfig(methods=BENCH_METHODS, tasks=tasks, images=EMOJI_TEST, out=str(out),
                       seed=seed, steps=steps, preset=preset, limit=per_class * prior.c_dim,
                       perceptual="feature-net", task_options=task_options, sheet_rows=2 * prior.c_dim)


def stage_bench(prior: StyleGAN2Prior, out: Path, per_class: int, preset: str, steps: int | None, seed: int,
                shard: tuple[int, int] = (0, 1)) -> dict:
    """Run (or resume) the benchmark into ``out``; the summary that the docs block is written from."""
    config = bench_config(prior, out, per_class, preset, steps, seed)
    results = run_benchmark(config, prior=prior, model_label=DEFAULT_MODEL, shard=shard)
    counts = np.bincount([i["label"] for i in results["images"]], minlength=prior.c_dim)
    return {"folder": out.name, "images": len(results["images"]), "per_class": per_class,
            "images_per_class": counts.tolist(), "preset": preset, "steps_cap": steps, "seed": seed,
            "mask": BENCH_MASK, "methods": list(config.methods), "tasks": [t.name for t in config.tasks],
            "fid_min_images": config.fid_min_images, "seconds_per_cell": results["seconds_per_cell"],
            "seconds_this_session": results["seconds_this_session"]}


def stage_ablation(prior: StyleGAN2Prior, folder: Path, per_class: int, preset: str, steps: int | None, seed: int,
                   shard: tuple[int, int] = (0, 1)) -> dict:
    """The ablation variants on the bench's images (same seeds and caps), then CRI paired against every
    column of the bench and of the ablation, image by image."""
    base = bench_config(prior, folder / "cri_ablation", per_class, preset, steps, seed)
    task_options = {t.name: {**base.task_options.get(t.name, {}),
                             "wplus": {"l2_weight": preset_options("cri", preset, t.task)["l2_weight"]}}
                    for t in base.tasks}
    config = replace(base, methods=tuple(ABLATION_VARIANTS), variants=ABLATION_VARIANTS, baselines=False,
                     task_options=task_options)
    bench_file = folder / "bench" / "results.json"
    if not bench_file.is_file():  # checked before the (long) run, not after it
        raise SystemExit(f"the ablation compares against the bench: run --stages bench first ({bench_file} missing)")
    results = run_benchmark(config, prior=prior, model_label=DEFAULT_MODEL, shard=shard)
    rows = json.loads(bench_file.read_text())["rows"] + results["rows"]
    others = ("wplus", "pti", "dgp", *ABLATION_VARIANTS)
    comparisons = [paired(rows, task, measure, "cri", other).__dict__
                   for measure in ABLATION_MEASURES for task in BENCH_TASKS for other in others]
    starts = {}
    for task in BENCH_TASKS:  # cri-noreg starts where CRI does: its extras hold both start losses
        extras = [r["extras"] for r in results["rows"] if r["task"] == task and r["column"] == "cri-noreg"]
        ratios = [e["start_loss"] / e["w_avg_loss"] for e in extras if e.get("w_avg_loss")]
        starts[task] = {"n": len(ratios), "median_ratio": float(np.median(ratios)) if ratios else None,
                        "centroid_closer": sum(r < 1 for r in ratios)}
    return {"folder": Path(config.out).name, "images": len(results["images"]),
            "variants": {**{k: v.options for k, v in ABLATION_VARIANTS.items()},
                         "wplus-l2": {"l2_weight": {t: o["wplus"]["l2_weight"] for t, o in task_options.items()}}},
            "comparisons": comparisons,
            "start_loss": starts, "seconds_per_cell": results["seconds_per_cell"]}


# ----- documentation -------------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render(name: str, results: dict, folder: Path) -> str | None:
    """Markdown for the ``<!-- build:name -->`` block of the docs, from ``results.json`` (and the
    benchmark's ``table.md`` in ``folder``)."""
    r = results.get(name)
    if r is None:
        return None
    if name == "feature-net":
        lines = ["| held-out input | top-1 | class-balanced |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(v['top1'])} | {_fmt(v['balanced'])} |" for k, v in r["held_out"].items()]
        lines.append(f"\nTrained {r['epochs']} epochs on {r['train_images']} images in {r['train_seconds']} s "
                     f"(seed {r['seed']}); final augmented train accuracy {_fmt(r['log'][-1]['train_acc_augmented'])}.")
        return "\n".join(lines)
    if name == "model":
        return (f"Source: `{json.dumps(r['source'])}`; parameters {r['parameters']}; "
                f"`model.safetensors` {r['bytes'] / 1e6:.1f} MB.")
    if name == "banks":
        return (f"{r['classes']} classes x N={r['n_clusters']} centroids of M={r['n_samples']} mapped latents "
                f"(seed {r['seed']}), k-means in {r['seconds']} s; `centroids.safetensors` {r['bytes'] / 1e3:.0f} kB.")
    if name == "samples":
        return "\n".join(f"![{f}]({r['folder']}/{f})" for f in r["files"])
    if name == "fid":
        seconds = r["seconds"]
        return (f"| samples | FID vs train ({r['train_images']}) | FID vs held-out ({r['held_out_images']}) | "
                f"train vs held-out |\n|---|---|---|---|\n| {r['samples']} (seed {r['seed']}) | "
                f"{_fmt(r['vs_train'], 2)} | {_fmt(r['vs_held_out'], 2)} | {_fmt(r['train_vs_held_out'], 2)} |\n\n"
                f"Wall time: reference features {seconds['references']:.0f} s (0 when cached), generated set "
                f"{seconds['generated']:.0f} s ({r['samples'] / max(seconds['generated'], 1e-9):.1f} img/s; "
                f"{r['threads']} thread(s), Inception batch {r['batch']}).")
    if name == "ablation":
        starts = " ".join(f"{task}: {v['median_ratio']:.2f} (centroid closer on {v['centroid_closer']}/{v['n']})."
                          for task, v in r["start_loss"].items() if v["median_ratio"] is not None)
        variants = ", ".join(f"`{k}` = {k.split('-')[0].upper().replace('WPLUS', 'W+')} with `{json.dumps(v)}`"
                             for k, v in r["variants"].items())
        return (f"{r['images']} images (the bench's), {variants}; A = CRI in every row.\n\n"
                + render_paired([Paired(**c) for c in r["comparisons"]])
                + f"\n\nMedian ratio of the chosen centroid's start loss to the class w_avg's: {starts}")
    if name == "bench":
        table = folder / r["folder"] / TABLE_FILE
        if not table.is_file():
            return None
        spread = "" if len(set(r["images_per_class"])) == 1 else f" (per class: {r['images_per_class']})"
        costs = ", ".join(f"{c} {v:.1f}" for c, v in r["seconds_per_cell"].items() if v is not None)
        sheets = [p for task in r["tasks"] for p in sorted((folder / r["folder"] / "sheets").glob(f"{task}-*.png"))]
        lines = [f"{r['images']} held-out images, {r['per_class']} per class{spread}, seed {r['seed']}, preset "
                 f"`{r['preset']}`, steps cap {r['steps_cap']}, inpainting mask `{r['mask']}`; FID against the "
                 f"same clean images, only for sets of at least {r['fid_min_images']} images. Mean seconds per "
                 f"cell: {costs}. Everything (per-image CSV, cells, sheets) is in "
                 f"[`{folder.name}/{r['folder']}/`]({folder.name}/{r['folder']}/).", ""]
        body = table.read_text().split("\n", 1)[1].strip()  # the harness's '# Benchmark' title line dropped
        lines += [body, "", "Sheets (rows = images; degraded | baselines | methods | clean): "
                  + ", ".join(f"[{p.stem}]({folder.name}/{r['folder']}/sheets/{p.name})" for p in sheets)]
        return "\n".join(lines)
    return None


def update_docs(results: dict, docs: Path) -> None:
    """Rewrite the generated blocks of ``docs`` (left alone when the file does not exist)."""
    if not docs.exists():
        return
    text = docs.read_text()
    for name in STAGES:
        block = render(name, results, docs.with_suffix(""))
        if block is not None:
            text = re.sub(rf"(<!-- build:{name} -->\n)(?:.*?\n)?(<!-- /build:{name} -->)",  # also an empty block
                          lambda m, b=block: m.group(1) + b + "\n" + m.group(2), text, flags=re.S)
    docs.write_text(text)


# ----- driver ----------------------------------------------------------------------------------------------
def read_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def steps_cap(text: str) -> int | None:
    return None if text.lower() == "none" else positive(text)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except BenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True, help="native prior, run folder, or training ckpt.pt")
    parser.add_argument("--out", type=Path, default=embedded_dir(), help="asset folder (default: the package's)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cache" / "emoji_32.npz")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--feature-epochs", type=int, default=fnet.TrainSettings.epochs)
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--fid-samples", type=positive, default=5000,
                        help="generated images for the FID stage (Inception: ~5 img/s per free core)")
    parser.add_argument("--bench-per-class", type=positive, default=1,
                        help="held-out images of every class in the benchmark")
    parser.add_argument("--bench-preset", default="paper", choices=PRESETS, help="method presets")
    parser.add_argument("--bench-steps", type=steps_cap, default=BENCH_STEPS,
                        help="cap every optimisation stage of the benchmark; 'none' = the preset's own budgets "
                             "(paper: about 57 min for 1 per class, vs 19 min at 100)")
    parser.add_argument("--bench-shard", type=shard, default=(0, 1), metavar="K/N",
                        help="compute every N-th benchmark cell from K (N processes side by side); then re-run "
                             "without it, which computes nothing new, for the complete table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive, default=1, help="torch CPU threads (2 once training is done)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown whose build blocks are rewritten; "
                        "sample sheets and results.json go to the folder of the same name")
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    torch.set_num_threads(args.threads)

    prior = load_generator(args.ckpt)
    folder = args.docs.with_suffix("")
    results_file = folder / "results.json"
    runners = {
        "model": lambda: stage_model(prior, args.ckpt, args.out),
        "feature-net": lambda: stage_feature_net(args.data, args.out, args.feature_epochs, args.seed),
        "banks": lambda: stage_banks(prior, args.out, args.n_clusters, args.n_samples, args.seed),
        "samples": lambda: stage_samples(prior, folder, seed=args.seed),
        "fid": lambda: stage_fid(prior, args.data, args.fid_samples, args.seed),
        "bench": lambda: stage_bench(attach_embedded_extras(prior, args.out), folder / "bench", args.bench_per_class,
                                     args.bench_preset, args.bench_steps, args.seed, args.bench_shard),
        "ablation": lambda: stage_ablation(attach_embedded_extras(prior, args.out), folder, args.bench_per_class,
                                           args.bench_preset, args.bench_steps, args.seed, args.bench_shard),
    }
    results = read_results(results_file)
    for stage in STAGES:
        if stage in stages:
            tqdm.write(f"== {stage}")
            outcome = runners[stage]()
            # re-read before writing: another process may have finished a stage meanwhile (fid || bench)
            results = {**read_results(results_file), stage: outcome}
            folder.mkdir(parents=True, exist_ok=True)
            tmp = results_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=2))
            tmp.replace(results_file)
    update_docs(results, args.docs)
    return results


if __name__ == "__main__":
    main()
