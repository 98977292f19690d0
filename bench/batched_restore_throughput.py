"""Images per second of ``ganprior.restore_batch`` end to end at batch 1, 4, 8 and 16, in one run.

The same N degraded emoji (×4 SR of samples of the embedded model, one per class in turn) are restored
with each of ``--methods`` (W+, CRI, PULSE, DGP) at every batch size, the batch sizes interleaved round by
round so that load changes on this shared machine hit them alike; each number is the best of
``--rounds``. Reported: end to end (N / wall seconds of ``restore_batch``: class search, start,
optimisation, the per-image stages, fusion) and the batched stage alone (N / the sum of the images'
W+, CRI ``offset``, ``pulse`` or DGP ``selection`` seconds), and end to end per second of this process's
CPU time (robust to other processes' load on a shared machine, as the process runs one thread). The
centroid banks are built once before timing (they are cached on disk in normal use). ``--steps`` is
W+'s / PULSE's steps and CRI's offset steps; DGP runs the ``fast`` table's stages capped at
``--tuning-steps`` each, from ``--select-num`` candidates.

    OMP_NUM_THREADS=1 python bench/batched_restore_throughput.py [--images 16] [--steps 30] [--rounds 2]
        [--methods wplus cri pulse dgp]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

import ganprior
from ganprior.api import load_prior
from ganprior.degradations import parse_task

BATCHES = (1, 4, 8, 16)


def observations(prior, n: int) -> list[torch.Tensor]:
    with torch.no_grad():
        clean = prior.sample(n, classes=[i % prior.c_dim for i in range(n)], seed=7)
        sr4 = parse_task("sr4", image_size=(prior.resolution, prior.resolution))
        return [sr4(clean[i:i + 1]) for i in range(n)]


#: the stage ``restore_batch`` batches, as named in each result's timings
STAGE = {"wplus": "wplus", "cri": "offset", "pulse": "pulse", "dgp": "selection"}


def settings(method: str, steps: int, tuning_steps: int, select_num: int, prior) -> dict:
    options = {"wplus": dict(steps=steps, w_avg_samples=2000, n_samples=2000),
               "cri": dict(offset_steps=steps, tuning_steps=tuning_steps, n_samples=2000),
               "pulse": dict(steps=steps, fit_samples=2000, n_samples=2000),
               "dgp": dict(table="fast", select_num=select_num, max_stage_steps=tuning_steps)}[method]
    return dict(task="sr4", method=method, model=prior, options=options, progress=False, value_range=(-1, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tuning-steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--select-num", type=int, default=32, help="DGP: candidates per image")
    parser.add_argument("--methods", nargs="+", choices=sorted(STAGE), default=["wplus", "cri"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batched_restore.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the 8x8 -> 32 px resolution note, once per image
    torch.set_num_threads(1)
    prior = load_prior("emoji32")
    obs = observations(prior, args.images)
    best: dict[tuple[str, int], dict[str, float]] = {}
    for method in args.methods:  # warm-up: centroid banks (cached), first-call allocations
        ganprior.restore_batch(obs[:2], batch_size=2, **settings(method, 2, 1, 4, prior))
    for r in range(args.rounds):
        for method in args.methods:
            for batch in BATCHES:
                start, cpu = time.perf_counter(), time.process_time()
                results = ganprior.restore_batch(obs, batch_size=batch, **settings(
                    method, args.steps, args.tuning_steps, args.select_num, prior))
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                stage_s = sum(res.timings.get(STAGE[method], 0.0) for res in results)
                row = {"end_to_end": args.images / wall, "stage": args.images / stage_s,
                       "end_to_end_cpu": args.images / cpu}
                old = best.get((method, batch))
                best[(method, batch)] = row if old is None else {k: max(v, old[k]) for k, v in row.items()}
                print(f"round {r} {method} b{batch}: {row['end_to_end']:.3f} img/s end to end "
                      f"({row['end_to_end_cpu']:.3f} per process CPU s), {row['stage']:.3f} img/s "
                      f"{STAGE[method]} stage", flush=True)
    rows = [{"method": m, "batch": b, **{k: round(v, 3) for k, v in best[(m, b)].items()},
             "end_to_end_vs_b1": round(best[(m, b)]["end_to_end"] / best[(m, 1)]["end_to_end"], 2),
             "end_to_end_cpu_vs_b1": round(best[(m, b)]["end_to_end_cpu"] / best[(m, 1)]["end_to_end_cpu"], 2),
             "stage_vs_b1": round(best[(m, b)]["stage"] / best[(m, 1)]["stage"], 2)}
            for m in args.methods for b in BATCHES]
    report = {"images": args.images, "steps": args.steps, "tuning_steps": args.tuning_steps, "rounds": args.rounds,
              "select_num": args.select_num, "methods": args.methods, "torch": torch.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from ganprior.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
