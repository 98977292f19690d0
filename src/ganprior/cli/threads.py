"""How many CPU threads torch gets: the cores this process may use that nothing else is using now.

torch's default (one thread per core) collapses when another process holds a core: its threads wait for
each other at every parallel region, so one busy core slows every step down many times (``make demo``
went from 162 s to 27 min at load 3-5). Counting the 1-minute load average as cores already taken keeps
every thread on a free core. ``--threads`` (or ``OMP_NUM_THREADS``) overrides the choice.
"""

from __future__ import annotations

import os

import click


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def free_cores(load: float | None = None) -> int:
    """Usable cores minus the ones the 1-minute load average says are busy (at least 1)."""
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    usable = usable_cores()
    return max(1, min(usable, int(usable - load + 0.5)))


def choose_threads(requested: int | None = None) -> int:
    """``requested``, else a positive ``OMP_NUM_THREADS``, else :func:`free_cores`."""
    if requested is not None:
        return int(requested)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return free_cores()


def apply_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to :func:`choose_threads` (imports torch); returns the number."""
    import torch

    n = choose_threads(requested)
    torch.set_num_threads(n)
    return n


#: the ``--threads`` option of the commands that optimise
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="torch CPU threads (default: OMP_NUM_THREADS when set, else the usable cores minus the 1-minute load "
         "average, at least 1, so other busy processes cannot stall every step).")
