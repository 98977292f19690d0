"""One optimisation at a time on the device, with live progress and a clean Stop.

A :class:`Job` runs one restoration in a worker thread under the :class:`DeviceQueue`'s lock (so two
browser tabs never optimise on one device at once; a second job waits its turn) and passes the
restoration's step callback to it. The page's handler reads the job's progress events as they come;
Stop makes the callback return ``False``, so the run ends with its best state so far.
"""

from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch


@dataclass
class Progress:
    """One step of a running job (``preview`` every few steps, else ``None``)."""

    step: int
    stage: str
    loss: float
    preview: torch.Tensor | None
    seconds: float


class DeviceQueue:
    """The device's single slot: whoever holds it optimises; the others wait, and can be told so."""

    def __init__(self) -> None:
        self._slot = threading.Lock()
        self._state = threading.Lock()
        self.running: Job | None = None
        self.waiting = 0

    def busy_message(self) -> str | None:
        """What a new job would wait for, or ``None`` when the device is free."""
        with self._state:
            job, waiting = self.running, self.waiting
        if job is None:
            return None
        where = f" ({job.last.stage}, step {job.last.step})" if job.last is not None else ""
        ahead = f" and {waiting} waiting" if waiting else ""
        return (f"Device busy: another restoration is running{where}{ahead}. Yours is queued and starts "
                "when the device is free.")

    @contextmanager
    def hold(self, job: "Job") -> Iterator[None]:
        with self._state:
            self.waiting += 1
        self._slot.acquire()
        with self._state:
            self.waiting -= 1
            self.running = job
        try:
            yield
        finally:
            with self._state:
                self.running = None
            self._slot.release()


class Job:
    """``work(callback)`` in a thread, holding the device; its progress, result or error afterwards."""

    def __init__(self, device: DeviceQueue, work: Callable[[Callable[..., bool]], Any]) -> None:
        self.device, self.work = device, work
        self.events: queue.Queue[Progress | None] = queue.Queue()
        self.stop_requested = threading.Event()
        self.last: Progress | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True, name="ganprior-ui-job")

    def start(self) -> "Job":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to end at its next step (it keeps its best state so far)."""
        self.stop_requested.set()

    def callback(self, step: int, stage: str, loss: float, preview: torch.Tensor | None) -> bool:
        self.last = Progress(step, stage, loss, preview, time.perf_counter() - self.started)
        self.events.put(self.last)
        return not self.stop_requested.is_set()

    def _run(self) -> None:
        try:
            with self.device.hold(self):
                self.started = time.perf_counter()
                self.result = self.work(self.callback)
        except Exception as exc:  # noqa: BLE001 - reported to the page, never kills the server
            self.error = exc
        finally:
            self.events.put(None)

    def updates(self, every: float = 0.25) -> Iterator[Progress]:
        """The latest progress at most every ``every`` seconds (and every preview), until the job ends."""
        shown = 0.0
        while True:
            event = self.events.get()
            if event is None:
                return
            if event.preview is not None or time.perf_counter() - shown >= every:
                shown = time.perf_counter()
                yield event
