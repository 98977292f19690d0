"""Peak memory and time of refusing hostile files, each in a fresh child process (issue 27's "must show").

For every named item of ``tests/hostile_corpus.py`` the file is built once, then loaded in a new Python process
through ``load_model`` and through ``ganprior convert``. The child reports its resident set after importing
ganprior (the baseline) and its peak (``VmHWM``) after the load; the parent adds ``wait4``'s ``ru_maxrss`` and
the wall time from spawn to exit (start-up included).

    python scripts/hostile_peak_rss.py --json out.json ndarray_object_bomb.pkl module_cycle.pkl ...
    python scripts/hostile_peak_rss.py --src /tmp/old/src ...   # the same against another checkout's package
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import io, json, sys, contextlib, time
def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
import torch
torch.set_num_threads(1)
from ganprior.loading import load_model
from ganprior.cli.main import cli
mode, target, out = sys.argv[1:4]
base = status("VmRSS:")
err = io.StringIO()
t0 = time.perf_counter()
mro = []
if mode == "import":
    observed, message = "imported", ""
elif mode == "load_model":
    try:
        load_model(target)
        observed, message = "loaded", ""
    except BaseException as exc:
        observed, message = type(exc).__name__, str(exc)
        mro = [c.__name__ for c in type(exc).__mro__]
else:
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        try:
            cli.main(["convert", target, out], prog_name="ganprior")
            code = 0
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:
            code = "traceback " + type(exc).__name__
    observed, message = f"exit {code}", err.getvalue().strip()
print(json.dumps({"observed": observed, "call_s": time.perf_counter() - t0, "message": message[:400], "lines": len(message.splitlines()),
                  "checkpoint_error": "CheckpointError" in (mro if mode == "load_model" else []),
                  "base_mb": base / 2**20, "peak_above_base_mb": (status("VmHWM:") - base) / 2**20}))
"""


def measure(target: str, mode: str, env: dict, out: str, timeout: float) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, target, out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"observed": "hang (killed)", "wall_s": timeout}
        time.sleep(0.01)
    wall = time.perf_counter() - start
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        row = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        row = {"observed": f"child died (status {proc.returncode}): {stderr.strip()[-200:]}"}
    row.update(wall_s=wall, ru_maxrss_mb=usage.ru_maxrss / 1024)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="corpus item names (tests/hostile_corpus.py)")
    parser.add_argument("--src", type=Path, help="import ganprior from this src/ folder instead")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    import hostile_corpus

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")])
    items = {item.name: item for item in hostile_corpus.corpus_items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        row = measure("-", "import", env, "-", args.timeout)  # start-up alone, for comparison
        print(f"start-up only (imports, no load): {row['wall_s']:.2f} s, baseline RSS {row.get('base_mb', -1):.0f} MB")
        rows.append({**row, "file": "-", "mode": "import"})
        for name in args.names:
            folder = Path(tmp) / name
            folder.mkdir()
            target = items[name].make(folder)
            for mode in ("load_model", "convert"):
                row = measure(target, mode, env, str(folder / "out.safetensors"), args.timeout)
                row.update(file=name, mode=mode, message=str(row.get("message", "")).replace(str(folder), "<dir>"))
                rows.append(row)
                print(f"{name:28s} {mode:10s} {row['observed']:24s} peak+{row.get('peak_above_base_mb', -1):8.1f} MB "
                      f"maxrss {row.get('ru_maxrss_mb', -1):6.0f} MB {row['wall_s']:5.2f} s (call {row.get('call_s', -1):5.3f} s) "
                      f"{row.get('message', '')[:80]}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
