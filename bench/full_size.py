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

``--estimate`` computes nothing: each case runs on fake tensors (``ganprior.bench.memory_estimate``)
and its peak RSS is *estimated* as the measured RSS of the imports + the peak malloc footprint of
the tensors it would hold (+ with ``--calibrate`` the code path's other memory, measured once at toy
size); ``--validate`` also measures each case for real (reduced sizes only),
``--compare FILE`` sets recorded measurements of the same cases beside the estimates.

    python bench/full_size.py --estimate --batches 1 4 8 --compare bench/results/full_size.json \
        --out bench/results/full_size_estimate.json
    python bench/full_size.py --estimate --validate --width 0.25 --resolution 128 --out /tmp/check.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ganprior.atomic import atomic_write_text
from ganprior.bench import full_size, memory_estimate


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.estimate:
        out = memory_estimate.estimate_case(args.model, args.case, args.width, args.resolution, args.steps)
        print("RESULT " + json.dumps(out), flush=True)
        return
    full_size.limit_memory(args.address_space_mb)
    start = time.perf_counter()
    prior = full_size.build(args.model, args.width, args.resolution)
    built = {"build_s": round(time.perf_counter() - start, 2), "rss_after_build_mb": round(full_size.peak_rss_mb(), 1),
             "cpu": full_size.cpu_label()}
    kind, _, value = args.case.partition(":")
    if kind == "step":
        out = full_size.run_step(prior, int(value), rounds=args.rounds)
    else:
        method, _, batch = value.partition(":")
        out = full_size.run_method(prior, method, args.steps, batch=int(batch or 1))
    print("RESULT " + json.dumps({**built, **out}), flush=True)


def run_case(args: argparse.Namespace, model: str, case: str, estimate: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--case", case, "--steps", str(args.steps),
           "--width", str(args.width), "--threads", str(args.threads),
           "--address-space-mb", str(args.address_space_mb), "--rounds", str(args.rounds)] + ["--estimate"] * estimate
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
            note = "; ".join([*(r.get("stopped") or []), *([r["cpu"]] if "cpu" in r else [])])
            lines.append(f"| {model} | {info['params_G'] / 1e6:.1f} M | {info['params_D'] / 1e6:.1f} M | {case} | "
                         f"{steps} | {cpu} | {r['peak_rss_mb']:.0f} | {r['rss_after_build_mb']:.0f} | {note[:60]} |")
        extras = {"step": info.get("mb_per_extra_image"), **info.get("method_mb_per_extra_image", {})}
        for case, extra in extras.items():
            if extra is not None:
                lines.append(f"| {model} | | | {case}: MB per extra image | | | {extra:.0f} | | |")
    return "\n".join(lines)


def extra_image_mb(info: dict, case: str, key: str = "peak_rss_mb") -> float | None:
    """Growth of ``key`` per image between the smallest and largest measured batch of ``case``."""
    sizes = {int(name.rsplit(" b", 1)[1]): r[key] for name, r in info["cases"].items()
             if name.rsplit(" b", 1)[0] == case and key in r}
    return memory_estimate.per_extra_image(sizes)


def import_rss_mb(method: bool) -> float:
    """Peak RSS of a fresh worker's imports (a method case also imports ``ganprior.api``): the part of
    an estimated peak that is not tensors."""
    code = ("from ganprior.bench import full_size; import ganprior.atomic" + ("; import ganprior.api" if method else "")
            + "; print(full_size.peak_rss_mb())")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def calibrate(args: argparse.Namespace, model: str, case: str) -> float | None:
    """Memory a case's code path holds besides tensors (lazy imports, code pages, Python objects):
    measured peak RSS - estimate of the same case at toy size (1/16 width, 32²), where tensors are few."""
    toy = argparse.Namespace(**{**vars(args), "width": 1 / 16, "resolution": 32})
    fake, real = run_case(toy, model, case, estimate=True), run_case(toy, model, case)
    if "error" in fake or "error" in real:
        return None
    kind = "step" if case.startswith("step") else "method"
    return round(real["peak_rss_mb"] - import_rss_mb(kind == "method") - fake["malloc_peak_mb"], 1)


def estimate(args: argparse.Namespace) -> dict:
    """Every case estimated on fake tensors (and, with ``--validate``, measured), one subprocess each."""
    import torch

    base = {"step": import_rss_mb(False), "method": import_rss_mb(True)}
    recorded = json.loads(args.compare.read_text())["models"] if args.compare else {}
    results = {"torch": torch.__version__, "width": args.width, "resolution": args.resolution, "steps_cap": args.steps,
               "batches": args.batches, "estimated": True, "import_rss_mb": base, "models": {}}
    if args.merge and args.out and args.out.exists():
        results["models"] = json.loads(args.out.read_text())["models"]
    for model in args.models:
        methods = [] if args.no_methods else args.methods or full_size.ARCHITECTURES[model][1]
        info = results["models"].setdefault(model, {"cases": {}})
        calibrations = info.setdefault("code_path_overhead_mb", {})
        for name, kind in ([] if args.no_step else [("step", "step:{}")]) + [(m, f"method:{m}:{{}}") for m in methods]:
            for batch in args.batches:
                case = f"{name} b{batch}"
                r = run_case(args, model, kind.format(batch), estimate=True)
                if "error" not in r:
                    if args.calibrate and name not in calibrations:
                        calibrations[name] = calibrate(args, model, kind.format(1))
                    overhead = calibrations.get(name) if args.calibrate else 0.0
                    r["estimated_peak_rss_mb"] = round(base["step" if name == "step" else "method"] + r["malloc_peak_mb"]
                                                       + (overhead or 0.0), 1)
                    r["code_path_overhead_mb"] = overhead
                    if args.validate:
                        measured = run_case(args, model, kind.format(batch))
                        r["measured_peak_rss_mb"] = measured.get("peak_rss_mb", measured.get("error"))
                    old = recorded.get(model, {}).get("cases", {}).get(case, {})
                    if "peak_rss_mb" in old:
                        r["recorded_peak_rss_mb"] = old["peak_rss_mb"]
                info["cases"][case] = r
                print(model, case, r, flush=True)
                if args.out:
                    atomic_write_text(args.out, json.dumps(results, indent=1))
            info.setdefault("mb_per_extra_image", {})[name] = extra_image_mb(info, name, "estimated_peak_rss_mb")
            if args.out:
                atomic_write_text(args.out, json.dumps(results, indent=1))
    return results


def estimate_table(results: dict) -> str:
    lines = ["| model | case | tensor peak MB | estimated peak RSS MB | measured MB | error | MB per extra image |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for model, info in results["models"].items():
        for case, r in info["cases"].items():
            if "error" in r:
                lines.append(f"| {model} | {case} | | | | | {r['error'][:80]} |")
                continue
            measured = r.get("measured_peak_rss_mb", r.get("recorded_peak_rss_mb"))
            error = f"{(r['estimated_peak_rss_mb'] / measured - 1) * 100:+.1f} %" if isinstance(measured, float) else ""
            name, batch = case.rsplit(" b", 1)
            last = max(int(c.rsplit(" b", 1)[1]) for c in info["cases"] if c.rsplit(" b", 1)[0] == name)
            extra = info.get("mb_per_extra_image", {}).get(name) if int(batch) == last else None
            lines.append(f"| {model} | {case} | {r['tensor_peak_mb']:.0f} | {r['estimated_peak_rss_mb']:.0f} (est.) | "
                         f"{measured if measured is not None else ''} | {error} | {'' if extra is None else f'{extra:.0f}'} |")
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
    parser.add_argument("--address-space-mb", type=float, default=12000,
                        help="each case's address-space cap (torch reserves ~3-4 GB of it that it never touches)")
    parser.add_argument("--rounds", type=int, default=2, help="steps timed per step case (the best is kept)")
    parser.add_argument("--case-timeout", type=float, default=None, help="seconds before a case is stopped")
    parser.add_argument("--no-step", action="store_true", help="skip the step cases")
    parser.add_argument("--no-methods", action="store_true", help="only the step cases")
    parser.add_argument("--merge", action="store_true", help="add to an existing --out file")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (rewritten after every case)")
    parser.add_argument("--estimate", action="store_true", help="estimate peak memory on fake tensors (runs nothing)")
    parser.add_argument("--validate", action="store_true", help="with --estimate: also measure each case for real")
    parser.add_argument("--calibrate", action="store_true",
                        help="with --estimate: add each code path's non-tensor memory, measured at toy size")
    parser.add_argument("--compare", type=Path, default=None, help="with --estimate: recorded measurements (JSON)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.estimate:
        results = estimate(args)
        if args.out:
            atomic_write_text(args.out, json.dumps(results, indent=1))
            atomic_write_text(args.out.with_suffix(".md"), estimate_table(results) + "\n")
        return print(estimate_table(results))

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
