"""``restore(..., samples=K)``: K restorations of one photo, run as one batch, and their maps.

Each sample is a full restoration fused with the observation like a single result, so all K reproduce
what was observed; they differ where the observation is silent because each starts elsewhere, in the
way its method already chooses starts (``Method``'s ``rank``: CRI the k-th best centroid of the bank,
DGP the k-th best candidate of its best-of-N selection, W/W+/PTI the class-average latent for the first
sample and a latent drawn from the mapping network for the others, PULSE another random point of
its sphere). Sample 1 is the ordinary restoration (rank 0).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganprior.atomic import atomic_directory
from ganprior.images import save_image
from ganprior.results import RestorationResult, _jsonable
from ganprior.samples import MAX_SAMPLES
from ganprior.samples.maps import hallucination, sample_spread
from ganprior.samples.render import samples_sheet, save_map

class SamplesError(ValueError):
    """A ``samples`` count that cannot be run."""


def check_samples(samples: int) -> int:
    """``samples`` as a whole number in 1..MAX_SAMPLES, or a one-line error."""
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise SamplesError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}")
    return samples


@dataclass
class SampleSet:
    """K restorations of one photo with their mean, uncertainty and sample 1's hallucination map."""

    results: list[RestorationResult]
    mean: torch.Tensor  # [1, 3, H, W]
    uncertainty: torch.Tensor  # [1, 1, H, W], grey levels 0..255
    hallucination: torch.Tensor  # [1, 1, H, W], grey levels 0..255, of sample 1
    seconds: float

    @property
    def first(self) -> RestorationResult:
        """Sample 1: the restoration ``samples=1`` would have returned."""
        return self.results[0]

    @property
    def config(self) -> dict[str, Any]:
        return self.first.config

    @property
    def class_index(self) -> int | None:
        return self.first.class_index

    @property
    def timings(self) -> dict[str, float]:
        return {**self.first.timings, "total": self.seconds}

    @property
    def stopped(self) -> str | None:
        return next((r.stopped for r in self.results if r.stopped), None)

    def summary(self) -> dict[str, Any]:
        """Per-sample losses and starts plus summary numbers (``samples.json``)."""
        per_sample = []
        for k, r in enumerate(self.results):
            extras = r.result.extras
            start = {key: extras[key] for key in ("centroid_index", "centroid_rank", "start_loss") if key in extras}
            if "selection" in extras:  # DGP: which candidate of its best-of-N selection, and its rank
                start.update(candidate=extras["selection"]["candidate"], candidate_rank=extras["selection"]["rank"])
            per_sample.append({"sample": k + 1, "class": r.class_index, "start": start,
                               "final_loss": r.losses[-1]["loss"] if r.losses else None,
                               "consistency_rmse": r.consistency_rmse})
        return {"count": len(self.results), "seconds": self.seconds, "samples": per_sample,
                "uncertainty": {"mean": float(self.uncertainty.mean()), "max": float(self.uncertainty.max()),
                                "unit": "grey levels (0..255), per-pixel std over samples, RMS over channels"},
                "hallucination": {"mean": float(self.hallucination.mean()), "max": float(self.hallucination.max()),
                                  "unit": "grey levels (0..255), |x - A+Ax| of sample 1, RMS over channels"}}

    def save(self, directory: str | os.PathLike, video: bool = False) -> Path:
        """Sample 1's run directory (as a single restore writes it) plus ``samples/NNN.png``, ``mean.png``,
        ``uncertainty.png``, ``hallucination.png``, ``samples_sheet.png`` and ``samples.json``; atomic."""
        directory = Path(directory)
        first = self.first
        with atomic_directory(directory) as tmp:
            first.save(tmp / "_first", video=video)
            for item in (tmp / "_first").iterdir():
                item.rename(tmp / item.name)
            (tmp / "_first").rmdir()
            (tmp / "samples").mkdir()
            for k, r in enumerate(self.results):
                save_image(r.image, tmp / "samples" / f"{k + 1:03d}.png")
            save_image(self.mean, tmp / "mean.png")
            save_map(self.uncertainty, tmp / "uncertainty.png", f"uncertainty: std over {len(self.results)} samples")
            save_map(self.hallucination, tmp / "hallucination.png", "hallucination: |x - A+Ax| of sample 1")
            samples_sheet(first.observation, [r.image for r in self.results], self.uncertainty, self.hallucination,
                          self.mean, first.mask, tmp / "samples_sheet.png")
            (tmp / "samples.json").write_text(json.dumps(self.summary(), indent=1, default=_jsonable))
        return directory


def samples_fingerprint(wanted: dict[str, Any], samples: int) -> dict[str, Any]:
    """:func:`ganprior.api.restore_fingerprint` of the same arguments, marked with the sample count (a
    run folder of K samples is reused only for K samples)."""
    if samples == 1:
        return wanted
    return {**wanted, "digest": f"{wanted['digest']}-samples{samples}",
            "parts": {**wanted.get("parts", {}), "samples": samples}}


def run_samples(prepared: list, seconds_before: float = 0.0) -> SampleSet:
    """Run K prepared restorations of one photo as one batch, sample k from its method's rank-k start."""
    from ganprior.methods.batched import project_batch

    head = prepared[0]
    started = time.perf_counter()
    batch = project_batch(head.runner, head.prior, [p.degradation for p in prepared], [p.target for p in prepared],
                          weights=[p.weight for p in prepared], class_indices=[p.class_index for p in prepared],
                          seeds=[p.seed for p in prepared], ranks=list(range(len(prepared))),
                          frame_every=head.frame_every, callbacks=[p.callback for p in prepared])
    share = (time.perf_counter() - started) / len(prepared)
    results = [p.complete(result, share) for p, result in zip(prepared, batch)]
    for r in results:  # complete() shares the prepared config: each sample gets its own, marked with K
        r.config = {**r.config, "samples": len(prepared),
                    "fingerprint": samples_fingerprint(r.config["fingerprint"], len(prepared))}
    images = torch.cat([r.image for r in results])
    mean, spread = sample_spread(images)
    made_up = hallucination(head.full, results[0].image)
    return SampleSet(results, mean, spread, made_up, seconds_before + time.perf_counter() - started)


def restore_samples(image: Any, samples: int = 4, task: Any = "colorize", method: str = "cri", model: Any = None,
                    **settings: Any) -> SampleSet:
    """K restorations of one photo (see the module doc); ``settings`` are :func:`ganprior.restore`'s.

    The photo is checked and placed once; the K runs share the model and run as one batch.
    """
    from ganprior.api import load_prior, prepare_restore
    from ganprior.models.prior import GenerativePrior

    check_samples(samples)
    if not isinstance(model, GenerativePrior):
        model = load_prior(model, settings.pop("weights", None), settings.pop("device", "cpu"))
    prepared = prepare_restore(image, task, method, model, **settings)
    return run_samples([prepared] * samples, prepared.prepared_in)
