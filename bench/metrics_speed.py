"""FID feature throughput (images/s) at 32x32 and 299x299 input, on this machine.

Times ``InceptionFeatures`` end to end (PIL bicubic resize to 299 + Inception pool features),
after one warm-up batch. Usage: ``python bench/metrics_speed.py [--images 32] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ganprior.metrics.fid import InceptionFeatures


def throughput(extractor: InceptionFeatures, size: int, count: int) -> float:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    extractor(images[: extractor.batch_size])  # warm-up
    start = time.perf_counter()
    extractor(images, progress=True)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images timed per input size")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extractor = InceptionFeatures(device=args.device, batch_size=args.batch_size)
    result = {f"fid_images_per_s_{size}px": round(throughput(extractor, size, args.images), 2) for size in (32, 299)}
    result.update(device=str(extractor.device), threads=args.threads, images=args.images, batch_size=args.batch_size)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
