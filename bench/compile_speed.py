"""Eager vs ``--compile`` (``torch.compile``, inductor) on every official fixture and the embedded
emoji32: parity with eager and with the official outputs, compile cost, and the speed of the
inversion step, side by side in one run.

Per network, at batch 1 (the first reference sample; one static graph per pass, no recompile):
  * parity: max |compiled − eager| of the synthesis image, of the gradient to ws (of
    ``image.square().mean()``) and of the discriminator features (where there is a discriminator);
    max |compiled − official| of the image (emoji32 has no official reference);
  * compile cost of each graph (the first call): no-grad forward, forward+backward, D features; wall
    seconds and CPU seconds of this process plus its finished children (the C++ compiler);
  * speed: no-grad forward and forward+backward to ws, eager and compiled interleaved, minimum over
    ``--repeats`` rounds (wall and process CPU).

    OMP_NUM_THREADS=1 python bench/compile_speed.py [--cases sg2_uncond_32 emoji32] [--repeats 7] \\
        [--json bench/results/compile_speed.json]
    python bench/compile_speed.py --table-from part1.json part2.json [--json merged.json]  # no measuring
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch._dynamo
import torch._inductor.config

from generator_speed import DEFAULT_FIXTURES, case_checkpoint
from ganprior.atomic import atomic_write_text
from ganprior.loading import load_model, load_official
from ganprior.losses.perceptual import discriminator_features
from ganprior.models.compiled import compile_prior

EMBEDDED = "emoji32"


def case_inputs(fixtures: Path, case: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor | None,
                                                     torch.Tensor | None]:
    """``(eager prior, ws, c, official image)`` for the first reference sample (batch 1). BigGAN's
    ws are its z; emoji32 (no official code) gets a seeded z through its mapping, class 0."""
    if case == EMBEDDED:
        prior = load_model(EMBEDDED).requires_grad_(False)
        c = prior.class_matrix(0, 1)
        with torch.no_grad():
            ws = prior.mapping(torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(0)), c)
        return prior, ws, c, None
    ref = np.load(fixtures / case / "reference.npz")
    prior = load_official(case_checkpoint(fixtures, case)).requires_grad_(False)
    if prior.family == "biggan":
        ws = torch.from_numpy(ref["z"][:1])[:, None]
        return prior, ws, prior.class_matrix(torch.from_numpy(ref["y"][:1]), 1), torch.from_numpy(ref["img"][:1])
    c = torch.from_numpy(ref["c"][:1]) if ref["c"].shape[1] else None
    return prior, torch.from_numpy(ref["w_psi1"][:1]), c, torch.from_numpy(ref["img_const_psi1"][:1])


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (inductor runs g++ as children)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def first_call(fn: Callable[[], object]) -> tuple[object, float, float]:
    """``fn()``'s result, wall and CPU seconds (the compile, for a compiled network's first call)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def image_and_grad(prior, ws: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One inversion step's network work: synthesis from ws and the backward pass to ws."""
    w = ws.clone().requires_grad_(True)
    img = prior.synthesis(w, c)
    img.square().mean().backward()
    return img.detach(), w.grad


def interleaved_min(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """Min wall and process-CPU seconds per variant over ``repeats`` rounds, variants interleaved."""
    for fn in variants.values():
        fn()  # warm-up
    best = {name: {"wall_s": float("inf"), "cpu_s": float("inf")} for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            best[name]["wall_s"] = min(best[name]["wall_s"], time.perf_counter() - wall)
            best[name]["cpu_s"] = min(best[name]["cpu_s"], time.process_time() - cpu)
    return best


def run_case(fixtures: Path, case: str, repeats: int) -> dict:
    eager, ws, c, official = case_inputs(fixtures, case)
    compiled = compile_prior(copy.deepcopy(eager), dynamic=False)
    out: dict = {"case": case, "family": eager.family, "compile": {}}
    with torch.no_grad():
        img_e = eager.synthesis(ws, c)
        img_c, out["compile"]["fwd_wall_s"], out["compile"]["fwd_cpu_s"] = first_call(lambda: compiled.synthesis(ws, c))
    out["img_vs_eager"] = max_abs(img_c, img_e)
    out["img_vs_official"] = None if official is None else max_abs(img_c, official)
    out["eager_vs_official"] = None if official is None else max_abs(img_e, official)
    img_ge, grad_e = image_and_grad(eager, ws, c)
    (img_gc, grad_c), out["compile"]["fwdbwd_wall_s"], out["compile"]["fwdbwd_cpu_s"] = \
        first_call(lambda: image_and_grad(compiled, ws, c))
    out["grad_img_vs_eager"] = max_abs(img_gc, img_ge)
    out["grad_vs_eager"] = max_abs(grad_c, grad_e)
    out["grad_max_abs"] = float(grad_e.abs().max())
    if eager.has_discriminator:
        with torch.no_grad():
            feats_e = discriminator_features(eager, img_e)
            feats_c, out["compile"]["dfeat_wall_s"], out["compile"]["dfeat_cpu_s"] = \
                first_call(lambda: discriminator_features(compiled, img_e))
        out["dfeat_vs_eager"] = max(max_abs(a, b) for a, b in zip(feats_c, feats_e))

    def forward(prior) -> Callable[[], object]:
        return lambda: torch.no_grad()(prior.synthesis)(ws, c)

    out["timing"] = interleaved_min({
        "eager_fwd": forward(eager), "compiled_fwd": forward(compiled),
        "eager_fwdbwd": lambda: image_and_grad(eager, ws, c), "compiled_fwdbwd": lambda: image_and_grad(compiled, ws, c),
    }, repeats)
    out["speedup"] = speedups(out["timing"])
    return out


def speedups(timing: dict[str, dict[str, float]]) -> dict[str, float]:
    """eager / compiled seconds, by process CPU time (robust to a loaded machine) and by wall time."""
    return {f"{p}_{clock}": timing[f"eager_{p}"][f"{clock}_s"] / timing[f"compiled_{p}"][f"{clock}_s"]
            for p in ("fwd", "fwdbwd") for clock in ("cpu", "wall")}


def markdown(rows: list[dict]) -> str:
    """Speed in process-CPU milliseconds per call (min over rounds); wall × in brackets."""
    lines = ["| network | max abs vs eager: image / grad ws / D feats | image vs official (eager: same) | "
             "fwd ms eager → compiled | fwd × CPU (wall) | fwd+bwd ms eager → compiled | fwd+bwd × CPU (wall) | "
             "compile wall s: fwd / fwd+bwd / D | compile CPU s: fwd / fwd+bwd / D |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        t, comp, x = r["timing"], r["compile"], speedups(r["timing"])
        feats = f"{r['dfeat_vs_eager']:.1e}" if "dfeat_vs_eager" in r else "—"
        official = "—" if r["img_vs_official"] is None else (
            f"{r['img_vs_official']:.1e}" + ("" if r["eager_vs_official"] == r["img_vs_official"]
                                             else f" (eager {r['eager_vs_official']:.1e})"))

        def compile_cost(clock: str) -> str:
            return " / ".join(f"{comp[f'{k}_{clock}_s']:.0f}" if f"{k}_{clock}_s" in comp else "—"
                              for k in ("fwd", "fwdbwd", "dfeat"))

        def ms(p: str) -> str:
            return f"{1e3 * t[f'eager_{p}']['cpu_s']:.1f} → {1e3 * t[f'compiled_{p}']['cpu_s']:.1f}"

        lines.append(
            f"| {r['case']} | {r['img_vs_eager']:.1e} / {r['grad_vs_eager']:.1e} / {feats} | {official} | "
            f"{ms('fwd')} | {x['fwd_cpu']:.2f} ({x['fwd_wall']:.1f}) | {ms('fwdbwd')} | "
            f"{x['fwdbwd_cpu']:.2f} ({x['fwdbwd_wall']:.1f}) | {compile_cost('wall')} | {compile_cost('cpu')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--cases", nargs="+", default=None, help=f"fixture names and/or {EMBEDDED} (default: all)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile-threads", type=int, default=1,
                        help="inductor's parallel C++ compiles (1: in this process, so its CPU time is counted)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table-from", type=Path, nargs="+", default=None,
                        help="print (and with --json write) the merged rows of earlier runs' JSON files")
    args = parser.parse_args()
    if args.table_from:
        merge(args.table_from, args.json)
        return
    torch.set_num_threads(args.threads)
    torch._inductor.config.compile_threads = args.compile_threads
    torch._dynamo.config.fail_on_recompile_limit_hit = True  # never time a silent fallback to eager
    cases = args.cases or [*json.loads((args.fixtures / "manifest.json").read_text())["cases"], EMBEDDED]
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats,
              "compile_threads": args.compile_threads, "rows": []}
    for case in cases:
        report["rows"].append(run_case(args.fixtures, case, args.repeats))
        print(json.dumps(report["rows"][-1]), flush=True)
        if args.json:
            atomic_write_text(args.json, json.dumps(report, indent=1))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), batch 1, min of {args.repeats}\n")
    print(markdown(report["rows"]))


def merge(paths: list[Path], out: Path | None) -> None:
    """The rows of several runs (same settings, e.g. cases split over two processes), one table."""
    reports = [json.loads(p.read_text()) for p in paths]
    settings = {k: v for k, v in reports[0].items() if k != "rows"}
    if any({k: v for k, v in r.items() if k != "rows"} != settings for r in reports):
        raise SystemExit("the runs were made with different settings: not merged")
    rows = sorted((row for r in reports for row in r["rows"]), key=lambda row: (row["case"] == EMBEDDED, row["case"]))
    for row in rows:  # rows of older runs stored wall-clock ratios only
        for old in ("speedup_fwd", "speedup_fwdbwd"):
            row.pop(old, None)
        row["speedup"] = speedups(row["timing"])
    merged = {**settings, "rows": rows}
    if out:
        atomic_write_text(out, json.dumps(merged, indent=1))
    print(markdown(merged["rows"]))


if __name__ == "__main__":
    main()
