"""Full-size readiness on this CPU: every method on random-weight networks of the released checkpoints'
architecture (StyleGAN-XL ImageNet-512, StyleGAN2 FFHQ-1024, StyleGAN3-T FFHQ-1024, BigGAN-256).

Each measurement runs in its own subprocess, so the peak resident memory (``ru_maxrss``) belongs to
that one case: ``step bN`` is the inner optimisation step at batch N (synthesis + perceptual + MSE,
backward to the latents), which gives the memory per extra image; every method is then run once
through ``ganprior.restore`` at batch 1 with each stage capped at ``--steps``.

    OMP_NUM_THREADS=1 python bench/full_size.py --out bench/results/full_size.json [--steps 2]
    python bench/full_size.py --width 0.0625 --resolution 32 --steps 1      # the quick check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ganprior.atomic import atomic_write_text
from ganprior.bench import full_size


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    full_size.limit_memory(args.memory_limit_mb + 6000)  # + torch's reserved but untouched address space
    start = time.perf_counter()
    prior = full_size.build(args.model, args.width, args.resolution)
    built = {"build_s": round(time.perf_counter() - start, 2), "rss_after_build_mb": round(full_size.peak_rss_mb(), 1)}
    kind, _, value = args.case.partition(":")
    out = full_size.run_step(prior, int(value)) if kind == "step" else full_size.run_method(prior, value, args.steps)
    print("RESULT " + json.dumps({**built, **out}), flush=True)


def run_case(args: argparse.Namespace, model: str, case: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--case", case, "--steps", str(args.steps),
           "--width", str(args.width), "--threads", str(args.threads),
           "--memory-limit-mb", str(args.memory_limit_mb)]
    if args.resolution:
        cmd += ["--resolution", str(args.resolution)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    lines = [line for line in proc.stderr.strip().splitlines() if "Error" in line] or [f"exit {proc.returncode}"]
    return {"error": lines[-1]}


def table(results: dict) -> str:
    lines = ["| model | G params | D params | case | s/step (stages) | peak RSS MB | RSS after build MB | note |",
             "|---|---|---|---|---|---|---|---|"]
    for model, info in results["models"].items():
        for case, r in info["cases"].items():
            if "error" in r:
                lines.append(f"| {model} | | | {case} | | | | {r['error'][:80]} |")
                continue
            steps = r.get("s_per_step")
            if isinstance(steps, dict):
                steps = ", ".join(f"{k} {v}" for k, v in steps.items())
            note = r.get("stopped") or ""
            lines.append(f"| {model} | {info['params_G'] / 1e6:.1f} M | {info['params_D'] / 1e6:.1f} M | {case} | "
                         f"{steps} | {r['peak_rss_mb']:.0f} | {r['rss_after_build_mb']:.0f} | {note[:60]} |")
        extra = info.get("mb_per_extra_image")
        if extra is not None:
            lines.append(f"| {model} | | | memory per extra image (step b1 -> b4) | | {extra:.0f} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(full_size.ARCHITECTURES))
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method that applies")
    parser.add_argument("--steps", type=int, default=2, help="cap on every stage's iterations")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = the released size)")
    parser.add_argument("--resolution", type=int, default=None, help="override the output size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-limit-mb", type=float, default=16000,
                        help="skip a batch whose extrapolated peak would exceed this")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (rewritten after every case)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch

    results = {"torch": torch.__version__, "threads": args.threads, "steps": args.steps, "width": args.width,
               "resolution": args.resolution, "models": {}}
    for model in args.models:
        prior = full_size.build(model, args.width, args.resolution)
        n_g, n_d = full_size.parameter_count(prior)
        info = results["models"][model] = {"resolution": prior.resolution, "num_ws": prior.num_ws,
                                           "params_G": n_g, "params_D": n_d, "cases": {}}
        del prior
        first = None
        for batch in args.batches:
            if first and first["peak_rss_mb"] + (batch - 1) * first.get("per_image", 0) > args.memory_limit_mb:
                info["cases"][f"step b{batch}"] = {"error": f"skipped: extrapolated peak over {args.memory_limit_mb} MB"}
                continue
            r = info["cases"][f"step b{batch}"] = run_case(args, model, f"step:{batch}")
            print(model, f"step b{batch}", r, flush=True)
            if "error" not in r and first is None:
                first = {**r, "per_image": r["peak_rss_mb"] - r["rss_after_build_mb"]}
            elif "error" not in r and first is not None:
                info["mb_per_extra_image"] = (r["peak_rss_mb"] - first["peak_rss_mb"]) / (batch - first["batch"])
        for method in args.methods or full_size.ARCHITECTURES[model][1]:
            r = info["cases"][method] = run_case(args, model, f"method:{method}")
            print(model, method, r, flush=True)
            if args.out:
                atomic_write_text(args.out, json.dumps(results, indent=1))
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=1))
        atomic_write_text(args.out.with_suffix(".md"), table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
