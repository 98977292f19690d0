"""What the page's buttons do on the server: one :class:`Studio` per ``ganprior ui`` process, holding
the model, the device queue, each browser session's running job, and where run folders go.

Every handler turns bad input into a message in the page (``Error: ...``) and never raises, so no
input can take the server down.
"""

from __future__ import annotations

import html
import logging
import re
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from PIL import Image

from ganprior.ui.inputs import (UIInputError, compose_task, editor_value, load_upload, preset_mask, restore_inputs,
                                show_holes)
from ganprior.ui.jobs import DeviceQueue, Job

log = logging.getLogger(__name__)
#: a preview every this many optimisation steps
PREVIEW_EVERY = 5
#: previews and results are shown at least this big (nearest-neighbour, display only)
DISPLAY_SIZE = 256
#: user errors that restore, the loaders and the degradations raise with a clear message
USER_ERRORS = (UIInputError, ValueError, RuntimeError)


def display(image: torch.Tensor | np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """An image as uint8, enlarged by a whole factor (pixel replication) until it is about ``size`` px."""
    from ganprior.images import to_uint8

    a = to_uint8(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    k = max(1, size // max(a.shape[:2]))
    return a.repeat(k, 0).repeat(k, 1) if k > 1 else a


def _sample_count(samples: float | None) -> int:
    """The page's "Samples" field as a count, or a message naming the field."""
    from ganprior.samples import MAX_SAMPLES

    if samples in (None, ""):
        return 1
    if float(samples) != int(samples) or not 1 <= int(samples) <= MAX_SAMPLES:
        raise UIInputError(f"Samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples}")
    return int(samples)


def as_text(text: object) -> str:
    """``text`` shown as itself in a Markdown component: no HTML tags (``<StyleGAN2Prior in memory>`` would
    vanish and cut the line), no emphasis or links from ``*``, ``_``, ``[``."""
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", html.escape(str(text), quote=False))


def error_text(exc: BaseException) -> str:
    if isinstance(exc, USER_ERRORS):
        return f"**Error:** {as_text(exc)}"
    log.exception("unexpected error in the UI", exc_info=exc)
    return f"**Error:** {type(exc).__name__}: {as_text(exc)}"


def warm_up() -> None:
    """Build one Adam optimiser: its first construction imports ``torch._dynamo`` (about 4 s on this
    CPU), which would otherwise delay the first Run's first preview."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def class_names(prior: Any) -> list[str]:
    """The model's class names when it has them, the emoji categories for the embedded model, else none."""
    names = getattr(prior, "class_names", None)
    if names:
        return [str(n) for n in names]
    if getattr(prior, "c_dim", 0) == 9 and getattr(prior, "resolution", 0) == 32:
        from ganprior.data.emoji import CATEGORIES

        return list(CATEGORIES)
    return []


class Studio:
    """The UI's server state and its handlers (one instance per server)."""

    def __init__(self, prior: Any, model_label: str, root: Path) -> None:
        self.prior, self.model_label, self.root = prior, model_label, Path(root)
        if not getattr(prior, "model_name", None):  # so run.json and the notes name it, not "<... in memory>"
            prior.model_name = model_label
        self.device = DeviceQueue()
        self.jobs: dict[str, Job] = {}
        self.names = class_names(prior)
        self.examples = self._examples()

    # ----- input -------------------------------------------------------------------------------------
    def _examples(self, per_class: int = 6) -> list[tuple[str, np.ndarray]]:
        from ganprior.data.emoji import EmojiDataError, load_emoji_test

        try:
            test = load_emoji_test(32)
        except (EmojiDataError, ValueError, OSError):
            return []
        chosen = [i for k in range(len(test.classes)) for i in np.flatnonzero(test.labels == k)[:per_class]]
        return [(f"held-out #{i} · {test.classes[test.labels[i]]} · {test.vendor_names[test.vendors[i]]}",
                 test.images[i]) for i in chosen]

    def class_choices(self) -> list[tuple[str, int]]:
        n = int(getattr(self.prior, "c_dim", 0))
        named = [f"{k} · {self.names[k]}" if k < len(self.names) else f"class {k}" for k in range(n)]
        return [("auto", -1)] + list(zip(named, range(n)))

    def load_file(self, path: str | None) -> tuple[Any, Any, str]:
        """(editor value, reference image, status) for an uploaded file."""
        try:
            image = load_upload(path)
        except UIInputError as exc:
            return None, None, error_text(exc)
        h, w = image.shape[:2]
        return editor_value(image), image, f"Loaded {Path(path).name} ({w}x{h}). Paint the holes to inpaint."

    def load_example(self, index: int | None) -> tuple[Any, Any, str]:
        if index is None or not 0 <= int(index) < len(self.examples):
            return None, None, "**Error:** pick one of the listed examples"
        label, image = self.examples[int(index)]
        return editor_value(image), image, f"Loaded {label}. Paint the holes to inpaint."

    def mask_preset(self, value: Any, kind: str, box: str) -> tuple[Any, str]:
        from ganprior.ui.inputs import read_editor

        try:
            image, _ = read_editor(value)
            mask = preset_mask(kind, image.shape[:2], box)
        except UIInputError as exc:
            return value, error_text(exc)
        holes = int((mask < 0.5).sum())
        return editor_value(image, mask), f"Mask: {kind} preset, {holes} hole pixels."

    def degrade(self, value: Any, tasks: list[str], sr_factor: int, seed: int) -> tuple[Any, str]:
        """Replace the image by its degraded version (every ticked task but inpainting) to try a clean one."""
        from ganprior.degradations import parse_task
        from ganprior.images import from_uint8, to_uint8
        from ganprior.ui.inputs import read_editor

        try:
            image, mask = read_editor(value)
            others = [t for t in tasks if t != "inpaint"]
            if not others:
                raise UIInputError("tick a task other than inpaint to simulate (inpainting uses the painted mask)")
            task = compose_task(others, int(sr_factor))
            with torch.no_grad():
                y = parse_task(task, seed=int(seed))(from_uint8(image)).clamp(-1, 1)
        except USER_ERRORS as exc:
            return value, error_text(exc)
        degraded = to_uint8(y if y.shape[1] == 3 else y.expand(-1, 3, -1, -1))
        kept = mask if mask is not None and mask.shape == degraded.shape[:2] else None
        return editor_value(degraded, kept), f"Degraded with {task}; the image before is kept as the reference."

    # ----- the run -----------------------------------------------------------------------------------
    def run(self, session: str, value: Any, tasks: list[str], sr_factor: int, method: str, preset: str,
            steps: float | None, seed: float | None, class_choice: int | None,
            reference: np.ndarray | None, samples: float | None = 1) -> Iterator[dict[str, Any]]:
        """Progress dictionaries (``status``, ``preview``), then the ``result`` dictionary; with ``samples``
        K > 1 the result also holds the K samples (``samples``) and the overlay views (``views``)."""
        try:
            if session in self.jobs and self.jobs[session].thread.is_alive():
                raise UIInputError("a run from this page is still going: press Stop first")
            task = compose_task(tasks or [], int(sr_factor))
            observation, mask = restore_inputs(value, task)
            cap = None if steps in (None, "") or int(steps) <= 0 else int(steps)
            cls = None if class_choice in (None, -1) else int(class_choice)
            count = _sample_count(samples)
            job = Job(self.device, self._work(observation, mask, task, method, preset, cap, int(seed or 0), cls,
                                              count))
        except USER_ERRORS as exc:
            yield {"status": error_text(exc)}
            return
        busy = self.device.busy_message()
        self.jobs[session] = job.start()
        yield {"status": busy or f"Running {method} on {task}…", "compare": None, "result": None, "summary": "",
               "downloads": None}
        try:
            for p in job.updates():
                update: dict[str, Any] = {"status": f"**{p.stage}** · step {p.step} · loss {p.loss:.4g} · "
                                                    f"{p.seconds:.1f} s"}
                if p.preview is not None:
                    update["preview"] = display(p.preview)
                yield update
        except GeneratorExit:  # the page went away: free the device instead of finishing for nobody
            job.stop()
            raise
        job.thread.join()
        if job.error is not None:
            yield {"status": error_text(job.error)}
            return
        try:
            yield self._finish(job, observation, mask, reference)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            yield {"status": error_text(exc)}

    def _work(self, observation, mask, task, method, preset, cap, seed, cls, samples: int = 1):
        from ganprior.api import restore
        from ganprior.cli.demo import restore_options
        from ganprior.samples.restore import restore_samples

        extra = restore_options(self.prior, method, task, preset) if method == "dgp" else {"preset": preset}
        if samples > 1:
            extra["samples"] = samples

        def work(callback):
            """The result and the warnings restore gave (shown with it; one job runs at a time)."""
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = (restore_samples if samples > 1 else restore)(
                    observation, task=task, method=method, model=self.prior, mask=mask, class_index=cls, seed=seed,
                    steps=cap, progress=False, callback=callback, preview_every=PREVIEW_EVERY, **extra)
            return result, list(dict.fromkeys(str(w.message) for w in caught))

        return work

    def _finish(self, job: Job, observation: torch.Tensor, mask: torch.Tensor | None,
                reference: np.ndarray | None) -> dict[str, Any]:
        from ganprior.images import to_uint8
        from ganprior.ui.report import save_run, score_run, summary_markdown, zip_run

        result, notes = job.result
        directory = save_run(result, self.root, mask, reference)
        sample_set, result = (result, result.first) if hasattr(result, "first") else (None, result)
        result.run_dir = directory  # the manipulations show their images as this run's (ui.manipulate)
        scores = score_run(directory)
        archive = zip_run(directory)
        observed = result.observation.detach().cpu()  # what the method saw: grey for colorize, holes for inpaint
        seen = show_holes(to_uint8(observed.expand(-1, 3, -1, -1)), None if mask is None else mask[0, 0].numpy())
        before = np.asarray(Image.fromarray(seen).resize(tuple(result.image.shape[-1:-3:-1]), Image.NEAREST))
        done = "Stopped" if result.result.interrupted else "Done"
        seconds = (sample_set or result).timings.get("total", 0.0)
        update = {
            "status": f"{done} in {seconds:.1f} s · run folder {directory.name}",
            "compare": (display(before), display(result.image)),
            "result": display(result.image),
            "summary": "".join(f"**Note:** {as_text(n)}\n\n" for n in notes)
                       + summary_markdown(result, scores, self.names),
            "downloads": [str(directory / "restored.png"), str(archive)],
            "state": result,
            "samples": None,
            "views": {"none": display(result.image)},
        }
        if sample_set is not None:
            from ganprior.samples.render import overlay

            update["samples"] = [display(r.image) for r in sample_set.results]
            update["views"].update(uncertainty=display(overlay(result.image, sample_set.uncertainty)),
                                   hallucination=display(overlay(result.image, sample_set.hallucination)))
            update["downloads"].insert(1, str(directory / "samples_sheet.png"))
        return update

    def stop(self, session: str) -> str:
        job = self.jobs.get(session)
        if job is None or not job.thread.is_alive():
            return "Nothing is running in this page."
        job.stop()
        return "Stopping at the next step; the best result so far is kept…"

    # ----- manipulations -----------------------------------------------------------------------------
    def manipulate(self, kind: str, result: Any, **kw: Any) -> tuple[list[np.ndarray] | None, str]:
        """Jitter / morph / transfer on the last result, run through the device queue."""
        from ganprior.ui import manipulate

        fn = {"jitter": manipulate.jitter_images, "morph": manipulate.morph_images,
              "transfer": manipulate.transfer_images}[kind]
        started = time.perf_counter()
        job = Job(self.device, lambda _callback: fn(self.prior, result, **kw)).start()
        job.thread.join()
        if job.error is not None:
            return None, error_text(job.error)
        images = [display(img[None]) for img in job.result]
        return images, f"{kind}: {len(images)} images in {time.perf_counter() - started:.1f} s"
