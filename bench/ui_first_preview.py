"""Run -> first preview on the embedded model, server side: where the browser test's end-to-end number
(docs/ui/timings.json: click to preview on screen) goes before the page gets it.

The job is the UI's default (inpaint a painted stroke on a held-out emoji, CRI, step cap 5).

* Warm process: ``--repeats`` rounds of ``Studio.run`` (what the page's Run handler does) to its first
  preview update, interleaved with ``ganprior.restore`` to its first preview callback (the library
  alone), after one dropped warm-up round. Medians.
* Fresh processes (``--fresh N``): the first run of a new process, N times with and N times without
  the server's ``warm_up()`` before it, alternating, so load hits both alike. Medians.

    OMP_NUM_THREADS=1 python3 bench/ui_first_preview.py [--repeats 5] [--fresh 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _job():
    import torch

    from ganprior.data.emoji import load_emoji_test
    from ganprior.loading import load_model

    image = load_emoji_test(32).images[0]
    mask = np.ones((32, 32), np.float32)
    mask[14:18, 4:28] = 0
    return load_model(None), image, mask, torch.from_numpy(mask)[None, None]


def restore_to_first_preview(prior, image, mask_t) -> float:
    import ganprior
    from ganprior.images import from_uint8
    from ganprior.ui.handlers import PREVIEW_EVERY

    first: list[float] = []
    t0 = time.perf_counter()

    def callback(step, stage, loss, preview):
        if preview is not None and not first:
            first.append(time.perf_counter() - t0)

    ganprior.restore(from_uint8(image), task="inpaint", mask=mask_t, model=prior, steps=5, progress=False,
                     callback=callback, preview_every=PREVIEW_EVERY)
    return first[0]


def warm(repeats: int) -> None:
    from ganprior.ui.handlers import Studio
    from ganprior.ui.inputs import editor_value

    prior, image, mask, mask_t = _job()
    studio = Studio(prior, "emoji32", Path(tempfile.mkdtemp(prefix="ui-bench-")))
    times: dict[str, list[float]] = {"Studio.run -> first preview": [], "restore -> first preview callback": []}
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        updates = studio.run("bench", editor_value(image, mask), ["inpaint"], 4, "cri", "paper", 5, 0, -1, None)
        next(u for u in updates if "preview" in u)
        times["Studio.run -> first preview"].append(time.perf_counter() - t0)
        for _ in updates:  # let the job finish: the device runs one at a time
            pass
        times["restore -> first preview callback"].append(restore_to_first_preview(prior, image, mask_t))
    for name, values in times.items():
        print(f"warm process, {name}: median {statistics.median(values[1:]):.3f} s over {repeats} "
              f"(dropped warm-up round: {values[0]:.2f} s)")


def child(warm_up_first: bool) -> None:
    from ganprior.ui.handlers import warm_up

    prior, image, _, mask_t = _job()
    if warm_up_first:
        warm_up()
    print(f"{restore_to_first_preview(prior, image, mask_t):.4f}")


def fresh(n: int) -> None:
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(n):
        for flag in (False, True):
            cmd = [sys.executable, __file__, "--child"] + (["--warm-up"] if flag else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
            times[flag].append(float(out[-1]))
    for flag, values in times.items():
        print(f"fresh process, first run {'after' if flag else 'without'} warm_up(): median "
              f"{statistics.median(values):.2f} s over {n} ({', '.join(f'{v:.2f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.warm_up)
        return
    warm(args.repeats)
    if args.fresh:
        fresh(args.fresh)


if __name__ == "__main__":
    main()
