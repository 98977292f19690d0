"""Run -> first preview on the embedded model, server side: where the browser test's end-to-end number
(docs/ui/timings.json, click to image on screen) goes before the page gets it.

For ``--repeats`` runs of the UI's default job (inpaint a painted stroke on a held-out emoji, CRI,
step cap 5) it times, in one process: the ``Studio.run`` call to its first preview update (what the
page's Run handler does) and ``ganprior.restore`` to its first preview callback (the library alone),
interleaved so machine load hits both alike. Medians in seconds.

    OMP_NUM_THREADS=1 python3 bench/ui_first_preview.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    import ganprior
    from ganprior.data.emoji import load_emoji_test
    from ganprior.images import from_uint8
    from ganprior.loading import load_model
    from ganprior.ui.handlers import PREVIEW_EVERY, Studio
    from ganprior.ui.inputs import editor_value

    prior = load_model(None)
    image = load_emoji_test(32).images[0]
    mask = np.ones((32, 32), np.float32)
    mask[14:18, 4:28] = 0
    studio = Studio(prior, "emoji32", Path(tempfile.mkdtemp(prefix="ui-bench-")))
    times: dict[str, list[float]] = {"studio.run -> first preview": [], "restore -> first preview callback": []}
    for _ in range(args.repeats + 1):  # the first round warms up and is dropped
        t0 = time.perf_counter()
        updates = studio.run("bench", editor_value(image, mask), ["inpaint"], 4, "cri", "paper", 5, 0, -1, None)
        next(u for u in updates if "preview" in u)
        times["studio.run -> first preview"].append(time.perf_counter() - t0)
        for _ in updates:  # let the job finish: the device runs one at a time
            pass
        first: list[float] = []
        t0 = time.perf_counter()

        def callback(step, stage, loss, preview):
            if preview is not None and not first:
                first.append(time.perf_counter() - t0)

        ganprior.restore(from_uint8(image), task="inpaint", mask=torch.from_numpy(mask)[None, None], model=prior,
                         steps=5, progress=False, callback=callback, preview_every=PREVIEW_EVERY)
        times["restore -> first preview callback"].append(first[0])
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values[1:]):.3f} s over {len(values) - 1} "
              f"(all: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
