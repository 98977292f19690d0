"""Load time of the official fixtures before and after the hostile-file checks, side by side in one run.

"before" is the package as of ``--before`` (default: the commit before the pre-scan landed), extracted with
``git archive`` into a temporary folder; "after" is this working tree. The two run as alternating fresh
subprocesses (A B B A ...), each timing ``load_model`` on every fixture ``--repeat`` times after one warm-up,
so both see the same machine load. Times are CPU seconds of the (single-threaded) process, which a shared,
busy machine disturbs far less than wall time. The scan alone is also timed inside the "after" process.

    OMP_NUM_THREADS=1 .venv/bin/python bench/load_scan_overhead.py --out bench/results/load_scan_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("GANPRIOR_SHARED", REPO.parent / "shared")) / "fixtures" / "official"

WORKER = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
from ganprior.loading import load_model
files, repeat, with_scan = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
out = {}
for f in files:
    load_model(f)  # warm-up: imports, first-call costs
    times = []
    for _ in range(repeat):
        t = time.process_time(); load_model(f); times.append(time.process_time() - t)
    row = {"load": times}
    if with_scan:
        from ganprior.loading.pickle_scan import scan_official_pickle
        from ganprior.loading.torch_files import scan_torch_file
        scans = []
        for _ in range(repeat):
            t = time.process_time()
            if f.endswith(".pth"):
                for p in (f, f.replace("G_ema_", "D_")):
                    with open(p, "rb") as fh:
                        scan_torch_file(fh, os.path.getsize(p), p)
            else:
                with open(f, "rb") as fh:
                    scan_official_pickle(fh.read(), f)
            scans.append(time.process_time() - t)
        row["scan"] = scans
    out[f] = row
print(json.dumps(out))
"""


def _extract(ref: str, into: Path) -> Path:
    archive = into / "src.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", ref, "src/ganprior"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _run(src: Path, files: list[str], repeat: int, with_scan: bool, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "GANPRIOR_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(files), str(repeat), "1" if with_scan else "0"],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a34ce3f^", help="git ref of the 'before' package")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="A/B pairs (order alternates)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    files = sorted(str(p) for p in FIXTURES.glob("*/network-snapshot.stripped.pkl"))
    files.append(str(FIXTURES / "biggan_128" / "G_ema_128.pth"))
    samples: dict[str, dict[str, list[float]]] = {f: {"before": [], "after": [], "scan": []} for f in files}
    with tempfile.TemporaryDirectory() as tmp:
        before_src = _extract(args.before, Path(tmp))
        after_src = REPO / "src"
        for rnd in range(args.rounds):
            order = [("before", before_src), ("after", after_src)]
            for label, src in order if rnd % 2 == 0 else order[::-1]:
                result = _run(src, files, args.repeat, label == "after", Path(tmp) / "cache")
                for f, row in result.items():
                    samples[f][label] += row["load"]
                    samples[f]["scan"] += row.get("scan", [])
    rows = []
    for f, s in samples.items():
        before, after, scan = (statistics.median(s[k]) for k in ("before", "after", "scan"))
        rows.append({"file": str(Path(f).relative_to(FIXTURES)), "before_s": before, "after_s": after,
                     "ratio": after / before, "scan_s": scan, "scan_share_of_after": scan / after})
    total_b, total_a = sum(r["before_s"] for r in rows), sum(r["after_s"] for r in rows)
    print(f"{'fixture':48s} {'before s':>9s} {'after s':>9s} {'after/before':>12s} {'scan s':>8s} {'scan/after':>10s}")
    for r in rows:
        print(f"{r['file']:48s} {r['before_s']:9.4f} {r['after_s']:9.4f} {r['ratio']:12.3f} {r['scan_s']:8.4f} "
              f"{r['scan_share_of_after']:10.3f}")
    print(f"{'all (sum of medians)':48s} {total_b:9.4f} {total_a:9.4f} {total_a / total_b:12.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"before_ref": args.before, "repeat": args.repeat, "rounds": args.rounds,
                                        "rows": rows, "total_before_s": total_b, "total_after_s": total_a},
                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
