"""FID, KID and the attribute-histogram distance of the faces32 prior against training progress.

    OMP_NUM_THREADS=1 python scripts/faces_fid_curve.py --run runs/faces32 [--every-kimg 5]

scores the EMA generator of each ``snapshots/ckpt-*.pt`` of the run (and ``ckpt.pt``, the newest) on
as many samples as the shipped held-out split has (styles balanced like it, truncation 1, constant
noise, seed 0) against that split: FID and KID (Inception, ``ganprior.metrics.fid``) and the mean
total-variation distance between the histograms of the (visible) attributes the attribute
classifier reads off samples and off held-out reals (``--attr-net``; trained on the train split only). Next to them, the
real-vs-real floor: the same scores for as many *train* images vs the held-out split. Points go to
``docs/training/faces_fid_curve.jsonl``; the curves (vs kimg and vs CPU-hours) to ``faces_fid_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_embedded import FID_BATCH, ROOT, load_generator
from fid_curve import (
    chunked_features,
    read_points,
    snapshot_iteration,
    training_cpu_hours,
)

from ganprior.atomic import atomic_path, atomic_write_text
from ganprior.data.cartoon_faces import load_faces_test
from ganprior.data.cartoon_faces_attributes import (
    histogram_distance,
    load_attribute_net,
    predict,
    visible_attrs,
)
from ganprior.data.emoji import load_emoji_npz

DOCS = ROOT / "docs" / "training"
BATCH = 32


def _uint8(images: torch.Tensor) -> np.ndarray:
    return images.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()


def score(images: torch.Tensor, styles: np.ndarray, ref: dict, extractor, net) -> dict:
    """FID, KID (when ``extractor``) and attribute-histogram distance (when ``net``) of ``images``
    (float NCHW in [-1, 1]) vs the held-out split."""
    from ganprior.metrics.fid import frechet_distance_of_features, kernel_distance

    out = {}
    if extractor is not None:
        features = chunked_features(images, extractor)
        n = min(len(features), len(ref["features"]))
        out["fid"] = frechet_distance_of_features(features, ref["features"])
        out["kid"] = float(kernel_distance(features, ref["features"], subset_size=min(n, 1000))[0])
    if net is not None:
        attrs = visible_attrs(predict(net, _uint8(images), styles)[1], net.attr_names, ref["vocab"])
        tv = histogram_distance(attrs, ref["attrs"], net.attr_names, net.head_sizes)
        out["attr_hist_tv"] = float(np.mean(list(tv.values())))
    return out


def plot(points: list[dict], floor: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("fid", "kid", "attr_hist_tv") if any(k in p for p in points)]
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 3 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        for col, x in enumerate(("kimg", "cpu_hours")):
            ax = axes[row][col]
            pts = sorted((p[x], p[key]) for p in points if key in p)
            ax.plot(*zip(*pts), "o-", label="faces32 EMA samples")
            if key in floor:
                ax.axhline(floor[key], color="grey", ls="--", label="real vs real floor (train vs held-out)")
            ax.set_xlabel("kimg" if x == "kimg" else "CPU-hours (wall-clock, 1 thread, shared machine)")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"faces32 prior vs the held-out split ({points[0]['samples']} images each)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "faces32")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cache" / "faces_32.npz")
    parser.add_argument("--attr-net", type=Path, default=ROOT / "src/ganprior/assets/faces32/attributes.safetensors")
    parser.add_argument("--every-kimg", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", type=Path, default=DOCS / "faces_fid_curve.jsonl")
    parser.add_argument("--plot", type=Path, default=DOCS / "faces_fid_curve.png")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--no-inception", action="store_true",
                        help="only the attribute-histogram distance (FID/KID cost ~0.5-3 CPU-s per image here)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    points = read_points(args.log)
    floor_path = args.log.with_name(args.log.stem + "_floor.json")
    if not args.plot_only:
        from ganprior.metrics.fid import InceptionFeatures

        extractor = None if args.no_inception else InceptionFeatures(device="cpu", batch_size=FID_BATCH)
        net = load_attribute_net(args.attr_net) if args.attr_net.is_file() else None
        test = load_faces_test(32)
        held = torch.from_numpy(test.images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        ref = {"features": None if extractor is None else chunked_features(held, extractor), "vocab": test.vocab}
        if net is not None:  # predicted on both sides, so the classifier's own errors cancel
            ref["attrs"] = visible_attrs(predict(net, test.images, test.labels)[1], net.attr_names, test.vocab)
        floor = json.loads(floor_path.read_text()) if floor_path.is_file() else {}
        if (extractor is not None and "fid" not in floor) or (net is not None and "attr_hist_tv" not in floor):
            train = load_emoji_npz(args.data, "train")
            pick = np.concatenate([np.flatnonzero(train.labels == s)[:np.sum(test.labels == s)] for s in (0, 1)])
            reals = torch.from_numpy(train.images[pick]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            floor.update(score(reals, train.labels[pick], ref, extractor, net), samples=len(pick))
            atomic_write_text(floor_path, json.dumps(floor) + "\n")
        done = {p["iteration"] for p in points if extractor is None or "fid" in p}
        kimgs = [p["kimg"] for p in points if p["iteration"] in done]
        candidates = sorted((args.run / "snapshots").glob("ckpt-*.pt"), key=snapshot_iteration)
        candidates = [(c, snapshot_iteration(c)) for c in candidates]
        candidates.append((args.run / "ckpt.pt", int(torch.load(args.run / "ckpt.pt", weights_only=True)["iteration"])))
        for path, iteration in candidates:
            kimg = iteration * BATCH / 1000
            if iteration in done or (kimgs and min(abs(kimg - k) for k in kimgs) < args.every_kimg):
                continue
            started = time.perf_counter()
            prior = load_generator(path)
            styles = test.labels.copy()
            images = prior.sample(len(styles), classes=torch.from_numpy(styles), seed=args.seed)
            point = {"kimg": kimg, "iteration": iteration, "samples": len(styles),
                     **{k: v for p in read_points(args.log) if p["iteration"] == iteration for k, v in p.items()},
                     **score(images, styles, ref, extractor, net),
                     "cpu_hours": round(training_cpu_hours(args.run / "log.jsonl", iteration, 0.0), 3),
                     "seconds": round(time.perf_counter() - started, 1),
                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            points = sorted([p for p in read_points(args.log) if p["iteration"] != iteration] + [point],
                            key=lambda p: p["kimg"])
            atomic_write_text(args.log, "".join(json.dumps(p) + "\n" for p in points))
            kimgs.append(kimg)
            print(json.dumps(point), flush=True)
    if points:
        plot(points, json.loads(floor_path.read_text()) if floor_path.is_file() else {}, args.plot)
        print(f"{len(points)} points -> {args.plot}")


if __name__ == "__main__":
    main()
