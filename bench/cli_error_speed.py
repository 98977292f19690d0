"""How fast ``ganprior restore`` answers a bad input, from the command line as typed (issue 10, item 7).

Runs each case as a fresh ``ganprior restore ...`` process, alternating the cases round after round so that
the shared machine's load hits all of them alike, and prints the median wall time per case. Reference rows:
``python -c "import torch"`` (what any torch-importing check would cost at least) and, with ``--old SRC``
(a ``src/`` folder of an older checkout, e.g. from ``git archive``), the same bad inputs on that code.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cli_error_speed.py --rounds 5 [--old /tmp/old/src]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

GANPRIOR = [str(Path(sys.executable).with_name("ganprior"))]  # the console script, as a user types it


def _cases(folder: Path) -> dict[str, list[str]]:
    Image.fromarray(np.zeros((29, 45, 3), np.uint8)).save(folder / "photo.png")
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(folder / "mask_10x10.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    (folder / "a_file").write_text("")
    photo = str(folder / "photo.png")
    return {
        "unreadable image": ["restore", str(folder / "broken.png"), "--task", "colorize", "--out", str(folder / "o")],
        "wrong-size mask": ["restore", photo, "--task", "inpaint", "--mask", str(folder / "mask_10x10.png"),
                            "--mask-hole-value", "black", "--out", str(folder / "o")],
        "unwritable --out": ["restore", photo, "--task", "colorize", "--out", str(folder / "a_file" / "o")],
        # issue 28, item 4: argument typos (each used to answer only after the model loaded, leaving --out)
        "--task colourise": ["restore", photo, "--task", "colourise", "--out", str(folder / "o")],
        "--model stylegan9": ["restore", photo, "--task", "colorize", "--model", "stylegan9", "--out", str(folder / "o")],
        "--mask box:1,2": ["restore", photo, "--task", "inpaint", "--mask", "box:1,2", "--out", str(folder / "o")],
        "--device cuda": ["restore", photo, "--task", "colorize", "--device", "cuda", "--out", str(folder / "o")],
    }


def _time(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Seconds, exit code, last stderr line; a --out folder the command left behind is reported and removed."""
    out = Path(command[command.index("--out") + 1]) if "--out" in command else None
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - started
    message = (proc.stderr.strip().splitlines() or [""])[-1]
    if out is not None and out.is_dir():
        shutil.rmtree(out)
        message = f"[LEFT --out] {message}"
    return seconds, proc.returncode, message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", type=Path, default=None, help="src/ folder of an older checkout to compare with")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cases(Path(tmp))
        runs: dict[str, tuple[list[str], dict[str, str]]] = {"reference: python -c 'import torch'": (
            [sys.executable, "-c", "import torch"], env)}
        for name, argv in cases.items():
            runs[f"now: {name}"] = ([*GANPRIOR, *argv], env)
            if args.old is not None:
                runs[f"old: {name}"] = ([*GANPRIOR, *argv], {**env, "PYTHONPATH": str(args.old)})
        times: dict[str, list[float]] = {name: [] for name in runs}
        last: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, (command, run_env) in runs.items():
                seconds, code, message = _time(command, run_env)
                times[name].append(seconds)
                last[name] = f"exit {code}: {message[:110]}"
    for name, values in times.items():
        print(f"{name:42s} median {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})"
              f"  {last[name]}")


if __name__ == "__main__":
    main()
