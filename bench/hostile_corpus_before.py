"""The hostile corpus loaded by the package *before* the issue-14 loaders (what the tests guard against).

Generates the corpus with this tree (``tests/hostile_corpus.py``), extracts the old package with
``git archive --before`` and, in a fresh process using it, loads each file in a forked child under
``RLIMIT_AS`` = address space + 2 GiB with a 10 s timeout. Items that need a per-item environment (cwd,
cache) are skipped.

    OMP_NUM_THREADS=1 .venv/bin/python bench/hostile_corpus_before.py > bench/results/hostile_corpus_before.txt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from load_scan_overhead import _extract  # noqa: E402

WORKER = r"""
import json, os, select, sys, time, resource
import torch
torch.set_num_threads(1)
from ganprior.loading import load_model

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) * 1024 for l in fh if l.startswith(field))

for item in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        rss0 = status("VmRSS:")
        resource.setrlimit(resource.RLIMIT_AS, (status("VmSize:") + (2 << 30), resource.RLIM_INFINITY))
        t = time.perf_counter()
        try:
            load_model(item["target"])
            seen = "loaded without error"
        except BaseException as exc:
            seen = f"{type(exc).__name__}: {' '.join(str(exc).split())[:90]}"
        os.write(w, json.dumps([seen, time.perf_counter() - t, (status("VmHWM:") - rss0) / 2 ** 20]).encode())
        os._exit(0)
    os.close(w)
    if not select.select([r], [], [], 10)[0]:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print(f"{item['name']:40s} HANG (killed after 10 s)", flush=True)
        continue
    data = os.read(r, 1 << 20)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st):
        print(f"{item['name']:40s} CRASH (signal {os.WTERMSIG(st)})", flush=True)
        continue
    seen, dt, peak = json.loads(data)
    print(f"{item['name']:40s} {dt:6.2f} s {peak:8.1f} MB  {seen}", flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a34ce3f^")
    args = parser.parse_args()
    import hostile_corpus

    with tempfile.TemporaryDirectory() as tmp:
        items = []
        for index, item in enumerate(hostile_corpus.corpus_items()):
            if item.setup is not None:
                continue
            sub = Path(tmp) / "files" / f"{index:02d}"
            sub.mkdir(parents=True)
            items.append({"name": item.name, "target": item.make(sub)})
        src = _extract(args.before, Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
        print(f"package at {args.before}; file, time, peak resident growth, outcome")
        sys.stdout.flush()
        subprocess.run([sys.executable, "-W", "ignore", "-c", WORKER, json.dumps(items)], env=env, check=True,
                       cwd=tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
