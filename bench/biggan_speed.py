"""ganprior's BigGAN vs the official DGP BigGAN code on this CPU: parity check, then side-by-side timings.

Both implementations are built from the same fixture weights (``G_ema_<res>.pth``, ``D_<res>.pth`` and
``config.json`` of an official fixture; or, with ``--width``, that architecture at another width with random
weights), in eval mode as DGP runs them. Their images, D features and
latent gradients are compared first, then interleaved rounds time, at each batch size:

* ``g_forward``: G forward under ``no_grad`` (DGP's candidate selection);
* ``g_latent``: G forward + backward to z and the class embedding, generator frozen (the inversion step);
* ``g_params``: G forward + backward to every G parameter and z (DGP's generator-tuning step);
* ``d_features``: D features forward + backward to the image, D frozen (DGP's feature loss).

Each sample runs the step ``--inner`` times; the table shows the minimum over ``--rounds`` (the machine is
shared: the minimum is the best estimate) of wall time and of process CPU time, per step, and the ratio
ours/official. ``--before REV`` also times ganprior's BigGAN as it was at git revision ``REV`` (its
``models/biggan.py`` and ``ops/spectral_norm.py`` read with ``git show`` into a temporary folder), so a
change is measured before/after in the same run.

The official code is never part of ganprior: ``--official-dir`` is the user's own checkout of
https://github.com/XingangPan/deep-generative-prior (only ``models/biggan.py`` and ``models/layers.py``
are imported, under a private package name so its ``models/__init__`` and its dependencies are skipped).

    OMP_NUM_THREADS=1 python3 bench/biggan_speed.py --official-dir ~/src/deep-generative-prior \\
        [--fixture .../fixtures/official/biggan_128] [--batches 1 4] [--rounds 7] [--before HEAD]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ganprior.atomic import atomic_write_text
from ganprior.models import biggan

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURE = Path(os.environ.get("GANPRIOR_SHARED", REPO.parent / "shared")) / "fixtures" / "official" / "biggan_128"
DEFAULT_JSON = REPO / "bench" / "results" / "biggan_speed.json"
CASES = ("g_forward", "g_latent", "g_params", "d_features")
Networks = tuple[nn.Module, nn.Module]


# ----- building the networks --------------------------------------------------------------------


def load_official_module(official_dir: Path) -> types.ModuleType:
    """The official ``models/biggan.py`` as package ``_dgp_official`` (its ``from . import layers`` resolves there)."""
    models = official_dir / "models"
    if not (models / "biggan.py").is_file() or not (models / "layers.py").is_file():
        raise SystemExit(f"{official_dir} is not a deep-generative-prior checkout (no models/biggan.py, models/layers.py)")
    package = types.ModuleType("_dgp_official")
    package.__path__ = [str(models)]
    sys.modules["_dgp_official"] = package
    return importlib.import_module("_dgp_official.biggan")


Weights = tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]  # DGP config, G and D state dicts


def fixture_weights(fixture: Path, width: int | None) -> Weights:
    """The fixture's DGP config and checkpoints; with ``width``, its architecture at ``G_ch = D_ch = width``
    with random weights instead (e.g. 96, the released models' width)."""
    config = dict(json.loads((fixture / "config.json").read_text())["config"])
    if width is None:
        res = config["resolution"]
        return (config, torch.load(fixture / f"G_ema_{res}.pth", weights_only=True),
                torch.load(fixture / f"D_{res}.pth", weights_only=True))
    config.update(G_ch=width, D_ch=width)
    torch.manual_seed(0)
    prior = biggan.BigGANPrior(biggan.BigGANConfig(**biggan.config_from_dgp_args(config)))
    return config, prior.G.state_dict(), prior.D.state_dict()


def build_official(module: types.ModuleType, weights: Weights) -> Networks:
    config, g_state, d_state = weights
    config = {**config, "G_activation": nn.ReLU(inplace=True), "D_activation": nn.ReLU(inplace=True), "skip_init": True}
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per attention layer
        G, D = module.Generator(**config), module.Discriminator(**config)
    G.load_state_dict(g_state, strict=True)
    D.load_state_dict(d_state, strict=True)
    return G.eval(), D.eval()


def build_ours(module: types.ModuleType, weights: Weights) -> Networks:
    prior = module.from_state_dicts(weights[1], weights[2])
    return prior.G, prior.D


def load_ganprior_revision(rev: str, workdir: Path) -> types.ModuleType:
    """ganprior's ``models/biggan.py`` at ``rev``, importing ``ops/spectral_norm.py`` of the same revision."""
    sources = {}
    for name, path in (("spectral_norm", "src/ganprior/ops/spectral_norm.py"), ("biggan", "src/ganprior/models/biggan.py")):
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout
        sources[name] = workdir / f"{name}_{rev.replace('/', '_')}.py"
        sources[name].write_text(text)

    def load(name: str) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(f"_ganprior_{name}_before", sources[name])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    current = sys.modules["ganprior.ops.spectral_norm"]
    sys.modules["ganprior.ops.spectral_norm"] = load("spectral_norm")  # what the old biggan.py imports from
    try:
        return load("biggan")
    finally:
        sys.modules["ganprior.ops.spectral_norm"] = current


# ----- the timed steps --------------------------------------------------------------------------


def inputs(G: nn.Module, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(batch)
    return torch.randn(batch, G.dim_z, generator=gen), torch.randint(0, G.shared.num_embeddings, (batch,), generator=gen)


def set_trainable(G: nn.Module, D: nn.Module, case: str) -> None:
    """``g_params`` trains every G parameter except the IN affine ones (frozen in both codes); else all frozen."""
    for name, p in G.named_parameters():
        p.requires_grad_(case == "g_params" and ".in1." not in name and ".in2." not in name)
    D.requires_grad_(False)


def step(case: str, nets: Networks, z: torch.Tensor, y: torch.Tensor,
         image: torch.Tensor) -> Callable[[], list[torch.Tensor]]:
    """The case's step on ``nets``; it returns what parity compares (outputs or gradients).

    ``d_features`` runs on ``image`` (the official G's), the same for every implementation: the gradient of
    the feature loss has kinks (ReLU, max pooling), so images that differ by float rounding can have
    image gradients that differ by ~1% at a few pixels, in any implementation.
    """
    G, D = nets
    if case == "g_forward":
        def run() -> list[torch.Tensor]:
            with torch.no_grad():
                return [G(z, G.shared(y))]
    elif case == "g_latent":
        def run() -> list[torch.Tensor]:
            latent = z.clone().requires_grad_(True)
            embedding = G.shared(y).detach().requires_grad_(True)
            G(latent, embedding).square().mean().backward()
            return [latent.grad, embedding.grad]
    elif case == "g_params":
        def run() -> list[torch.Tensor]:
            G.zero_grad(set_to_none=True)
            latent = z.clone().requires_grad_(True)
            G(latent, G.shared(y)).square().mean().backward()
            return [latent.grad, G.linear.weight.grad, G.blocks[0][0].conv1.weight.grad]
    elif case == "d_features":
        def run() -> list[torch.Tensor]:
            x = image.clone().requires_grad_(True)
            _, features = D(x)
            sum(f.square().mean() for f in features).backward()
            return [x.grad, *(f.detach() for f in features)]
    else:
        raise ValueError(case)
    return run


def max_abs_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def relative_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-30)) for x, y in zip(a, b, strict=True))


def time_case(runs: dict[str, Callable], rounds: int, inner: int) -> dict[str, dict[str, float]]:
    """Min over rounds of (wall, process CPU) seconds per step; implementations interleaved within a round."""
    for run in runs.values():
        run()  # warm-up
    best = {name: {"wall_s": float("inf"), "cpu_s": float("inf")} for name in runs}
    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]  # alternate who goes first
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(inner):
                runs[name]()
            wall, cpu = (time.perf_counter() - wall) / inner, (time.process_time() - cpu) / inner
            best[name]["wall_s"] = min(best[name]["wall_s"], wall)
            best[name]["cpu_s"] = min(best[name]["cpu_s"], cpu)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-dir", type=Path, required=True, help="checkout of XingangPan/deep-generative-prior")
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--width", type=int, help="random weights at G_ch = D_ch = WIDTH instead of the fixture's")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--before", metavar="REV", help="also time ganprior's BigGAN at this git revision")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    weights = fixture_weights(args.fixture, args.width)
    impls = {"official": build_official(load_official_module(args.official_dir.resolve()), weights),
             "ours": build_ours(biggan, weights)}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            impls["before"] = build_ours(load_ganprior_revision(args.before, Path(tmp)), weights)

    rows = []
    for batch in args.batches:
        z, y = inputs(impls["ours"][0], batch)
        official_G = impls["official"][0]
        with torch.no_grad():
            image = official_G(z, official_G.shared(y))
        for case in args.cases:
            for G, D in impls.values():
                set_trainable(G, D, case)
            runs = {name: step(case, nets, z, y, image) for name, nets in impls.items()}
            reference = runs["official"]()
            parity = {name: {"max_abs": max_abs_diff(run(), reference), "max_rel": relative_diff(run(), reference)}
                      for name, run in runs.items() if name != "official"}
            timings = time_case(runs, args.rounds, args.inner)
            row = {"case": case, "batch": batch, "parity_vs_official": parity, "timing": timings,
                   "ratio_vs_official": {name: {k: timings[name][k] / timings["official"][k] for k in ("wall_s", "cpu_s")}
                                         for name in impls if name != "official"}}
            rows.append(row)
            print(json.dumps(row), flush=True)

    others = [name for name in impls if name != "official"]
    header = ["case", "batch", "official wall ms", *(f"{n} wall ms" for n in others),
              *(f"{n}/official wall" for n in others), *(f"{n}/official CPU" for n in others),
              *(f"{n} max rel diff" for n in others)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        t, ratio = row["timing"], row["ratio_vs_official"]
        cells = [row["case"], str(row["batch"]), f"{1e3 * t['official']['wall_s']:.1f}",
                 *(f"{1e3 * t[n]['wall_s']:.1f}" for n in others),
                 *(f"{ratio[n]['wall_s']:.2f}" for n in others), *(f"{ratio[n]['cpu_s']:.2f}" for n in others),
                 *(f"{row['parity_vs_official'][n]['max_rel']:.1e}" for n in others)]
        lines.append("| " + " | ".join(cells) + " |")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), fixture {args.fixture.name}"
          f"{f' at width {args.width} (random weights)' if args.width else ''}, "
          f"min of {args.rounds} rounds x {args.inner} steps\n")
    print("\n".join(lines))
    run = {"torch": torch.__version__, "threads": torch.get_num_threads(), "fixture": args.fixture.name,
           "width": args.width, "rounds": args.rounds, "inner": args.inner, "before": args.before, "rows": rows}
    save_run(args.json, f"{args.fixture.name}" + (f"@width{args.width}" if args.width else ""), run)


def save_run(path: Path, label: str, run: dict) -> None:
    """Store ``run`` under ``runs[label]`` of the JSON file, keeping the other labels' runs."""
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    runs[label] = run
    atomic_write_text(path, json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
