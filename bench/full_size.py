"""Full-size readiness on this CPU: every method on random-weight networks of the released checkpoints'
architecture (StyleGAN-XL ImageNet-512, StyleGAN2 FFHQ-1024, StyleGAN3-T FFHQ-1024, BigGAN-256).

Each measurement runs in its own subprocess, so the peak resident memory (``ru_maxrss``) belongs to
that one case: ``step bN`` is the inner optimisation step at batch N (synthesis + perceptual + MSE,
backward to the latents), which gives the memory per extra image; every method is then run
through ``ganprior.restore_batch`` at each ``--batches`` size with each stage capped at ``--steps``
(a method without a batched path runs the batch's images one at a time, as ``restore_batch`` does).
``--merge`` adds the cases to an existing ``--out`` file, so models can be measured one run at a time.

    OMP_NUM_THREADS=1 python bench/full_size.py --out bench/results/full_size.json [--steps 2]
    python bench/full_size.py --models stylegan_xl-imagenet512 --methods cri --no-step --merge --out ...
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
    full_size.limit_memory(args.address_space_mb)
    start = time.perf_counter()
    prior = full_size.build(args.model, args.width, args.resolution)
    built = {"build_s": round(time.perf_counter() - start, 2), "rss_after_build_mb": round(full_size.peak_rss_mb(), 1)}
    kind, _, value = args.case.partition(":")
    if kind == "step":
        out = full_size.run_step(prior, int(value), rounds=args.rounds)
    else:
        method, _, batch = value.partition(":")
        out = full_size.run_method(prior, method, args.steps, batch=int(batch or 1))
    print("RESULT " + json.dumps({**built, **out}), flush=True)


def run_case(args: argparse.Namespace, model: str, case: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--case", case, "--steps", str(args.steps),
           "--width", str(args.width), "--threads", str(args.threads),
           "--address-space-mb", str(args.address_space_mb), "--rounds", str(args.rounds)]
    if args.resolution:
        cmd += ["--resolution", str(args.resolution)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after the {args.case_timeout:.0f} s case timeout"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    lines = [line for line in proc.stderr.strip().splitlines() if "Error" in line] or [f"exit {proc.returncode}"]
    return {"error": lines[-1]}


def table(results: dict) -> str:
    lines = ["| model | G params | D params | case | s/step (stages) | CPU s/step | peak RSS MB | RSS after build MB | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, info in results["models"].items():
        for case, r in info["cases"].items():
            if "error" in r:
                lines.append(f"| {model} | | | {case} | | | | | {r['error'][:80]} |")
                continue
            steps = r.get("s_per_step")
            if isinstance(steps, dict):
                steps = ", ".join(f"{k} {v}" for k, v in steps.items())
            cpu = r.get("cpu_s_per_step", f"{r.get('cpu_seconds', '')} total")
            note = "; ".join(r.get("stopped") or [])
            lines.append(f"| {model} | {info['params_G'] / 1e6:.1f} M | {info['params_D'] / 1e6:.1f} M | {case} | "
                         f"{steps} | {cpu} | {r['peak_rss_mb']:.0f} | {r['rss_after_build_mb']:.0f} | {note[:60]} |")
        extras = {"step": info.get("mb_per_extra_image"), **info.get("method_mb_per_extra_image", {})}
        for case, extra in extras.items():
            if extra is not None:
                lines.append(f"| {model} | | | {case}: MB per extra image | | | {extra:.0f} | | |")
    return "\n".join(lines)


def extra_image_mb(info: dict, case: str) -> float | None:
    """Peak-RSS growth per image between the smallest and largest measured batch of ``case``."""
    done = sorted((r["batch"], r["peak_rss_mb"]) for name, r in info["cases"].items()
                  if name.startswith(case + " b") and "error" not in r)
    if len(done) < 2:
        return None
    (b0, m0), (b1, m1) = done[0], done[-1]
    return round((m1 - m0) / (b1 - b0), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(full_size.ARCHITECTURES))
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method that applies")
    parser.add_argument("--steps", type=int, default=2, help="cap on every stage's iterations")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = the released size)")
    parser.add_argument("--resolution", type=int, default=None, help="override the output size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--address-space-mb", type=float, default=12000,
                        help="each case's address-space cap (torch reserves ~3-4 GB of it that it never touches)")
    parser.add_argument("--rounds", type=int, default=2, help="steps timed per step case (the best is kept)")
    parser.add_argument("--case-timeout", type=float, default=None, help="seconds before a case is stopped")
    parser.add_argument("--no-step", action="store_true", help="skip the step cases")
    parser.add_argument("--no-methods", action="store_true", help="only the step cases")
    parser.add_argument("--merge", action="store_true", help="add to an existing --out file")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (rewritten after every case)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch

    results = {"models": {}}
    if args.merge and args.out and args.out.exists():
        results = json.loads(args.out.read_text())
    results.update(torch=torch.__version__, threads=args.threads, width=args.width, resolution=args.resolution)

    def record(info: dict, case: str, r: dict) -> None:
        info["cases"][case] = r
        print(info["resolution"], case, r, flush=True)
        if args.out:
            atomic_write_text(args.out, json.dumps(results, indent=1))

    for model in args.models:
        prior = full_size.build(model, args.width, args.resolution)
        n_g, n_d = full_size.parameter_count(prior)
        info = results["models"].setdefault(model, {"cases": {}})
        info.update(resolution=prior.resolution, num_ws=prior.num_ws, params_G=n_g, params_D=n_d,
                    step_gflop=full_size.step_gflop(prior))  # moves it to the meta device
        del prior
        if not args.no_step:
            for batch in args.batches:
                record(info, f"step b{batch}", run_case(args, model, f"step:{batch}"))
            info["mb_per_extra_image"] = extra_image_mb(info, "step")
        for method in [] if args.no_methods else args.methods or full_size.ARCHITECTURES[model][1]:
            for batch in args.batches:
                r = run_case(args, model, f"method:{method}:{batch}")
                record(info, f"{method} b{batch}", {**r, "steps_cap": args.steps})
            info.setdefault("method_mb_per_extra_image", {})[method] = extra_image_mb(info, method)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=1))
        atomic_write_text(args.out.with_suffix(".md"), table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
