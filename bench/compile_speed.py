"""Eager vs ``--compile`` (``torch.compile``, inductor) on every official fixture: parity with the
official outputs and with eager, and the speed of the inversion step, side by side in one run.

Per fixture: the synthesis image from the fixture's ws (psi 1) and, where the fixture has a
discriminator, its features; max |compiled − eager| and max |compiled − official|. Speed: forward
(no grad) and forward+backward to the ws at batch 1, minimum of ``--repeats`` after warm-up (the
compile time is reported separately: the first call).

    OMP_NUM_THREADS=1 python bench/compile_speed.py [--cases sg2_uncond_32 biggan_128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from generator_speed import DEFAULT_FIXTURES, best_seconds, case_checkpoint
from ganprior.loading import load_official
from ganprior.models.compiled import compile_prior


def reference_call(prior, ref: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(ws, c, official image)`` of the fixture: StyleGAN families from ws, BigGAN from z and y."""
    if prior.family == "biggan":
        ws = torch.from_numpy(ref["z"])[:, None]
        return ws, prior.class_matrix(torch.from_numpy(ref["y"]), len(ws)), torch.from_numpy(ref["img"])
    ws = torch.from_numpy(ref["w_psi1"])
    c = torch.from_numpy(ref["c"]) if ref["c"].shape[1] else None
    return ws, c, torch.from_numpy(ref["img_const_psi1"])


def features(prior, img: torch.Tensor) -> list[torch.Tensor]:
    from ganprior.losses.perceptual import discriminator_features

    return discriminator_features(prior, img) if prior.has_discriminator else []


def run_case(fixtures: Path, case: str, repeats: int) -> dict:
    ref = dict(np.load(fixtures / case / "reference.npz"))
    eager = load_official(case_checkpoint(fixtures, case)).requires_grad_(False)
    ws, c, official = reference_call(eager, ref)
    compiled = compile_prior(copy.deepcopy(eager))
    out: dict = {"case": case, "family": eager.family}
    with torch.no_grad():
        img_e = eager.synthesis(ws, c)
        start = time.perf_counter()
        img_c = compiled.synthesis(ws, c)
        out["compile_fwd_s"] = time.perf_counter() - start
        out["img_vs_eager"] = float((img_c - img_e).abs().max())
        out["img_vs_official"] = float((img_c - official).abs().max())
        feats_e, feats_c = features(eager, img_e), features(compiled, img_e)
        if feats_e:
            out["dfeat_vs_eager"] = max(float((a - b).abs().max()) for a, b in zip(feats_c, feats_e))
    one_ws, one_c = ws[:1], None if c is None else c[:1]

    def step(prior) -> None:
        w = one_ws.clone().requires_grad_(True)
        prior.synthesis(w, one_c).square().mean().backward()

    start = time.perf_counter()
    step(compiled)
    out["compile_bwd_s"] = time.perf_counter() - start
    for name, prior in (("eager", eager), ("compiled", compiled)):
        with torch.no_grad():
            out[f"{name}_fwd_s"] = best_seconds(lambda: prior.synthesis(one_ws, one_c), repeats)
        out[f"{name}_fwdbwd_s"] = best_seconds(lambda: step(prior), repeats)
    out["speedup_fwd"] = out["eager_fwd_s"] / out["compiled_fwd_s"]
    out["speedup_fwdbwd"] = out["eager_fwdbwd_s"] / out["compiled_fwdbwd_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--cases", nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = args.cases or list(json.loads((args.fixtures / "manifest.json").read_text())["cases"])
    rows = []
    for case in cases:
        rows.append(run_case(args.fixtures, case, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            from ganprior.atomic import atomic_write_text

            atomic_write_text(args.json, json.dumps(rows, indent=1))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), min of {args.repeats}\n")
    print("| case | max abs vs eager (img / D feats) | vs official | eager fwd s | compiled fwd s | fwd × | "
          "eager fwd+bwd s | compiled fwd+bwd s | fwd+bwd × | compile s (fwd + bwd) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        feats = f"{r['dfeat_vs_eager']:.1e}" if "dfeat_vs_eager" in r else "—"
        print(f"| {r['case']} | {r['img_vs_eager']:.1e} / {feats} | {r['img_vs_official']:.1e} | {r['eager_fwd_s']:.4f} | "
              f"{r['compiled_fwd_s']:.4f} | {r['speedup_fwd']:.2f} | {r['eager_fwdbwd_s']:.4f} | "
              f"{r['compiled_fwdbwd_s']:.4f} | {r['speedup_fwdbwd']:.2f} | "
              f"{r['compile_fwd_s']:.0f} + {r['compile_bwd_s']:.0f} |")


if __name__ == "__main__":
    main()
