"""K restorations on held-out images: diversity, best-of-K vs first sample, and whether the uncertainty
predicts the error (issue 25). Also the time of K samples against K = 1, measured side by side.

For every method and held-out image (``emoji-test``, one task) it makes K samples with
``restore_samples`` and records, against the clean image:
  * diversity: mean pairwise RMS distance of the samples (grey levels) inside the unobserved region
    (the hole for inpainting; the whole image otherwise, where the null space is everywhere);
  * PSNR of sample 1, of the best of the K samples and of their mean;
  * calibration of the per-pixel std against the per-pixel error of the mean: Pearson correlation and the
    AUSE with its random-order level (``ganprior.samples.calibration``), over the unobserved pixels.
Time: K = 1 and K = K of the same images alternate, so load hits both alike.

    OMP_NUM_THREADS=1 .venv/bin/python bench/samples_calibration.py --images 50 --samples 4 --steps 20 \\
        --methods cri,wplus,pti,pulse,dgp --task inpaint --out docs/samples
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ganprior.api import load_prior
from ganprior.bench.sources import load_images
from ganprior.samples.calibration import sparsification
from ganprior.samples.maps import pixel_rms
from ganprior.samples.restore import restore_samples


def _psnr(x: torch.Tensor, clean: torch.Tensor) -> float:
    mse = float(((x - clean) * 127.5).pow(2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", torch {torch.backends.cpu.get_cpu_capability()}"
    except OSError:
        pass
    return platform.processor()


def one_image(prior, image, method: str, task: str, k: int, steps: int) -> dict:
    mask = "center" if "inpaint" in task else None
    started = time.perf_counter()
    result = restore_samples(image.clean, samples=k, task=task, mask=mask, method=method, model=prior, steps=steps,
                             progress=False, value_range=(-1, 1), class_index=image.label)
    seconds = time.perf_counter() - started
    clean = image.clean
    images = torch.cat([r.image for r in result.results])
    unobserved = (result.first.mask < 0.5) if result.first.mask is not None else torch.ones_like(clean[:, :1],
                                                                                                 dtype=torch.bool)
    region = unobserved[0, 0].numpy()
    pairs = [float(pixel_rms(images[a:a + 1] - images[b:b + 1])[0, 0].numpy()[region].mean())
             for a, b in itertools.combinations(range(k), 2)]
    error = pixel_rms(result.mean - clean)[0, 0].numpy()[region]
    spread = result.uncertainty[0, 0].numpy()[region]
    return {"id": image.id, "seconds": seconds, "diversity": float(np.mean(pairs)) if pairs else 0.0,
            "psnr_first": _psnr(images[:1], clean), "psnr_best": max(_psnr(images[i:i + 1], clean) for i in range(k)),
            "psnr_mean": _psnr(result.mean, clean), **sparsification(spread, error)}


def table(reports: list[dict]) -> str:
    """Markdown rows of every method in ``reports`` (JSON files this script wrote)."""
    lines = ["| method | images | diversity (hole, grey levels) | PSNR sample 1 | PSNR best of K | PSNR mean | "
             "Pearson(std, error) | AUSE | AUSE random | AUSE < random | K/1 time (after warm-up) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for report in reports:
        k = report["samples"]
        for method, entry in report["methods"].items():
            m, timing = entry["summary"], entry.get("timing") or {}
            k1, kk = timing.get("k1") or [], timing.get(f"k{k}") or []
            warm = 1 if min(len(k1), len(kk)) > 1 else 0  # the first pair pays warm-up (caches, first calls)
            ratio = sum(kk[warm:]) / sum(k1[warm:]) if k1 and kk else None
            lines.append(f"| {method} | {len(entry['rows'])} | {m['diversity']:.1f} | {m['psnr_first']:.2f} | "
                         f"{m['psnr_best']:.2f} | {m['psnr_mean']:.2f} | {m['pearson']:.3f} | {m['ause']:.3f} | "
                         f"{m['ause_random']:.3f} | {100 * m['ause_below_random']:.0f} % | "
                         + (f"{ratio:.2f}x |" if ratio else "— |"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", default="cri,wplus,pti,pulse,dgp")
    parser.add_argument("--task", default="inpaint")
    parser.add_argument("--timing-images", type=int, default=3, help="images timed at K = 1 next to K")
    parser.add_argument("--out", type=Path, default=Path("docs/samples"))
    parser.add_argument("--table", nargs="+", type=Path, help="print the markdown table of these JSON files and stop")
    args = parser.parse_args()
    if args.table:
        print(table([json.loads(p.read_text()) for p in args.table]))
        return
    torch.set_num_threads(1)
    prior = load_prior(None)
    images = load_images("emoji-test", prior.resolution, limit=args.images)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"calibration_{args.task}.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report.update(cpu=_cpu(), task=args.task, samples=args.samples, steps=args.steps, images=len(images))
    methods = report.setdefault("methods", {})
    for method in args.methods.split(","):
        rows = methods.get(method, {}).get("rows", [])
        done = {row["id"] for row in rows}
        timing = {"k1": [], f"k{args.samples}": []}
        for n, image in enumerate(images):
            if n < args.timing_images:  # K = 1 then K, alternating, for the time ratio
                timing["k1"].append(one_image(prior, image, method, args.task, 1, args.steps)["seconds"])
            if image.id in done:
                continue
            row = one_image(prior, image, method, args.task, args.samples, args.steps)
            rows.append(row)
            if n < args.timing_images:
                timing[f"k{args.samples}"].append(row["seconds"])
            summary = {key: float(np.nanmean([r[key] for r in rows])) for key in
                       ("diversity", "psnr_first", "psnr_best", "psnr_mean", "pearson", "ause", "ause_random",
                        "seconds")}
            summary["ause_below_random"] = float(np.mean([r["ause"] < r["ause_random"] for r in rows]))
            methods[method] = {"rows": rows, "summary": summary,
                               "timing": timing if timing["k1"] and timing[f"k{args.samples}"]
                               else methods.get(method, {}).get("timing")}
            path.write_text(json.dumps(report, indent=1))
            print(method, len(rows), {k: round(v, 3) for k, v in summary.items()}, flush=True)


if __name__ == "__main__":
    main()
