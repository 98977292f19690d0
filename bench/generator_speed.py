"""Generator speed on this CPU for every official fixture network: seconds per image, as a Markdown table.

Forward = ``prior(z, c)`` under ``torch.no_grad()``; forward+backward = ``synthesis(ws)`` and a backward
pass to ``ws`` (the inner step of every inversion method). Each number is the minimum over repeats
divided by the batch size (minimum: the machine is shared, so that is the best estimate). The last
column is the official code's own forward time at batch 1 from the fixture manifest, for comparison.

    python3 bench/generator_speed.py [--repeats 3] [--threads 1] [--batches 1 8]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ganprior.loading import load_official
from ganprior.loading.native import FamilyNotAvailableError

DEFAULT_FIXTURES = Path(os.environ.get("GANPRIOR_SHARED", Path(__file__).resolve().parents[2] / "shared")) \
    / "fixtures" / "official"


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, lazily built buffers)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def case_checkpoint(fixtures: Path, case: str) -> Path:
    pkl = fixtures / case / "network-snapshot.stripped.pkl"
    return pkl if pkl.exists() else fixtures / case


def measure(prior, batch: int, repeats: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, prior.z_dim, generator=gen)
    c = prior.class_matrix(torch.randint(0, max(prior.c_dim, 1), (batch,), generator=gen) if prior.c_dim else None,
                           batch)
    with torch.no_grad():
        forward = best_seconds(lambda: prior(z, c), repeats)
        ws = prior.mapping(z, c)

    def forward_backward() -> None:
        w = ws.clone().requires_grad_(True)
        prior.synthesis(w, c).square().mean().backward()

    return forward / batch, best_seconds(forward_backward, repeats) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = json.loads((args.fixtures / "manifest.json").read_text())

    header = ["case", "family", "res", "params"]
    for b in args.batches:
        header += [f"fwd b{b} s/img", f"fwd+bwd b{b} s/img"]
    header.append("official fwd b1 s/img")
    rows = []
    for case, info in tqdm(manifest["cases"].items(), desc="networks"):
        try:
            prior = load_official(case_checkpoint(args.fixtures, case)).requires_grad_(False)
        except FamilyNotAvailableError as exc:
            tqdm.write(f"skip {case}: {exc}")
            continue
        G_params = sum(p.numel() for p in prior.G.parameters())
        row = [case, prior.family, str(prior.resolution), f"{G_params / 1e6:.2f} M"]
        for batch in args.batches:
            row += [f"{t:.4f}" for t in measure(prior, batch, args.repeats)]
        timing = info.get("timing_cpu", {})
        official = (timing.get("G_ema_forward_batch1") or timing.get("G_forward_batch1") or {}).get("min_s")
        row.append(f"{official:.4f}" if official is not None else "n/a")
        rows.append(row)

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
          f"min of {args.repeats} runs\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
