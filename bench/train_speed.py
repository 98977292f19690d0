"""Training-step speed of the embedded prior on this CPU: every option side by side, in one process.

One "step" is what ``ganprior train`` does per iteration (D update with lazy R1, G update, EMA), with
the run's config (batch 32, R1 every 4 steps), warm-started from the shipped generator. The variants
are timed round-robin in blocks of ``--steps`` iterations, so a change of machine load hits all of
them alike; each number is the median block over ``--rounds`` (after one warm-up block). Ratios to
the fp32 baseline are what to read: the machine is shared. Process CPU seconds per iteration are
reported too: on a loaded machine they are the steadier measure of what a variant costs.

Before timing, a sanity check compares bf16 autocast with fp32 from identical state and RNG: losses,
the R1 penalty (a double backward through autocast) and the cosine of the D and G gradients.

    OMP_NUM_THREADS=1 python3 bench/train_speed.py [--rounds 3] [--steps 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ganprior.atomic import atomic_write_text
from ganprior.data.emoji import load_emoji_npz
from ganprior.training.loop import TrainConfig, Trainer, warm_start

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "ganprior" / "assets" / "emoji32" / "model.safetensors"
SHIPPED_ITERATION = 10012  # divisible by 4: the first timed step of every block pattern includes R1


@dataclass
class Variant:
    """One way of running the step: Trainer options, a config change, a thread count or torch.compile."""

    name: str
    precision: str = "fp32"
    channels_last: bool = False
    threads: int = 1
    compile: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    trainer: Trainer | None = None
    note: str = ""


VARIANTS = [
    Variant("fp32 (baseline)"),
    Variant("bf16 autocast", precision="bf16"),
    Variant("channels_last", channels_last=True),
    Variant("bf16 + channels_last", precision="bf16", channels_last=True),
    Variant("torch.compile", compile=True),
    Variant("R1 every step", config={"r1_interval": 1}),
    Variant("R1 every 8", config={"r1_interval": 8}),
    Variant("R1 every 16", config={"r1_interval": 16}),
    Variant("batch 16", config={"batch": 16}),
    Variant("batch 64", config={"batch": 64}),
    Variant("2 threads", threads=2),
]


def make_trainer(data, config: TrainConfig, precision: str = "fp32", channels_last: bool = False) -> Trainer:
    trainer = Trainer(config, data, precision=precision, channels_last=channels_last)
    warm_start(trainer, SHIPPED, SHIPPED_ITERATION)
    if channels_last:  # warm_start copies values into the existing (NHWC) parameters
        assert trainer.G.synthesis.b32.conv0.weight.is_contiguous(memory_format=torch.channels_last)
    return trainer


def compile_trainer(trainer: Trainer) -> str:
    """Compile G's mapping and synthesis; D too unless its R1 double backward refuses to compile."""
    trainer.G.mapping.compile()
    trainer.G.synthesis.compile()
    probe = copy.deepcopy(trainer.D)
    probe.compile()
    try:
        x = trainer.reals[:4].clone().requires_grad_(True)
        c = torch.nn.functional.one_hot(trainer.labels[:4], trainer.c_dim).float()
        (g,) = torch.autograd.grad(probe(x, c).sum(), x, create_graph=True)
        g.square().sum().backward()
    except Exception as err:  # dynamo/aot raise assorted types for unsupported double backward
        return f"G compiled; D left eager (R1 double backward does not compile: {type(err).__name__})"
    trainer.D.compile()
    return "G and D compiled"


def grads(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])


def bf16_sanity(data, config: TrainConfig, steps: int = 8) -> list[dict[str, float]]:
    """bf16 vs fp32 from identical state and RNG, one step at a time (iteration 10012 has R1).

    For scale, "cos fp32 next batch" is the cosine between fp32 gradients of consecutive steps
    (another batch): the minibatch noise that bf16's rounding error should stay well inside.
    """
    reference = make_trainer(data, config)
    rows = []
    previous = None
    for _ in range(steps):
        state = copy.deepcopy(reference.state_dict())
        rng = torch.get_rng_state()
        out = {}
        for precision in ("fp32", "bf16"):
            torch.set_rng_state(rng)
            trainer = Trainer(config, data, state=copy.deepcopy(state), precision=precision)
            stats = trainer.step()
            out[precision] = (stats, grads(trainer.D), grads(trainer.G))
        (s32, d32, g32), (s16, d16, g16) = out["fp32"], out["bf16"]
        cos = torch.nn.functional.cosine_similarity
        row = {"iteration": state["iteration"], "loss_D fp32": s32["loss_D"], "loss_D bf16": s16["loss_D"],
               "loss_G fp32": s32["loss_G"], "loss_G bf16": s16["loss_G"],
               "cos grad D": cos(d32, d16, dim=0).item(), "cos grad G": cos(g32, g16, dim=0).item(),
               "|grad D| ratio": (d16.norm() / d32.norm()).item(), "|grad G| ratio": (g16.norm() / g32.norm()).item()}
        if "r1" in s32:
            row.update({"r1 fp32": s32["r1"], "r1 bf16": s16["r1"]})
        if previous is not None:
            row.update({"cos D fp32 next batch": cos(previous[0], d32, dim=0).item(),
                        "cos G fp32 next batch": cos(previous[1], g32, dim=0).item()})
        previous = d32, g32
        rows.append(row)
        torch.set_rng_state(rng)
        reference.step()
    return rows


def time_block(variant: Variant, steps: int) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per iteration (CPU time barely moves with the machine's load;
    with 2 threads it is the sum over both)."""
    torch.set_num_threads(variant.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        variant.trainer.step()
    seconds, cpu = (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps
    torch.set_num_threads(1)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cache" / "emoji_32.npz")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16,
                        help="iterations per timed block (a multiple of every R1 interval timed)")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    parser.add_argument("--sanity", action=argparse.BooleanOptionalAction, default=True,
                        help="the bf16-vs-fp32 gradient check before timing (deterministic: skip it on a re-run)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_emoji_npz(args.data, "train")
    base = TrainConfig()

    sanity = bf16_sanity(data, base) if args.sanity else []
    for row in sanity:
        print(json.dumps({k: round(v, 5) for k, v in row.items()}))

    variants = [v for v in VARIANTS if args.only is None or v.name in args.only]
    for v in variants:
        v.trainer = make_trainer(data, replace(base, **v.config), v.precision, v.channels_last)
        if v.compile:
            started = time.perf_counter()
            v.note = compile_trainer(v.trainer)
            time_block(v, 4)
            v.note += f"; first steps incl. compilation {time.perf_counter() - started:.0f} s"
    for round_ in range(args.rounds + 1):
        for v in variants:
            seconds, cpu = time_block(v, args.steps)
            if round_:
                v.times.append(seconds)
                v.cpu_times.append(cpu)
        print(f"round {round_} done", flush=True)

    base_s, base_cpu = statistics.median(variants[0].times), statistics.median(variants[0].cpu_times)
    print("\n| variant | s/iter (wall) | CPU s/iter | images per CPU-s | vs fp32 (CPU s/image) | note |\n"
          "|---|---|---|---|---|---|")
    results = []
    for v in variants:
        s, cpu = statistics.median(v.times), statistics.median(v.cpu_times)
        batch = v.trainer.config.batch
        speedup = (base_cpu / base.batch) / (cpu / batch)
        print(f"| {v.name} | {s:.3f} | {cpu:.3f} | {batch / cpu:.1f} | {speedup:.2f}x | {v.note} |")
        results.append({"variant": v.name, "s_per_iter": s, "cpu_s_per_iter": cpu, "images_per_cpu_s": batch / cpu,
                        "batch": batch, "speedup_per_image": speedup, "block_times": v.times,
                        "block_cpu_times": v.cpu_times, "wall_speedup_per_image": (base_s / base.batch) / (s / batch),
                        "note": v.note})
    if args.json:
        atomic_write_text(args.json, json.dumps({"sanity": sanity, "results": results,
                                                 "steps": args.steps, "rounds": args.rounds}, indent=1))


if __name__ == "__main__":
    main()
