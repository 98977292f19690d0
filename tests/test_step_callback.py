"""The public per-step callback ``callback(step, stage, loss, preview) -> bool`` of the methods and of
``ganprior.restore``: what it is told, and that it can stop a run cleanly with the best result so far."""

from __future__ import annotations

import math

import pytest
import torch

import ganprior
from ganprior.degradations import center_box_mask, parse_task
from ganprior.methods import StopRestoration, get_method_class
from test_dgp import tiny_biggan
from test_methods import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def prior():
    return tiny_prior(c_dim=3)


@pytest.fixture(scope="module")
def clean(prior) -> torch.Tensor:
    z = torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        c = prior.class_matrix(1, 1)
        return prior.synthesis(prior.mapping(z, c), c)


class Log:
    """A callback that records every call and stops after ``stop_at`` calls (by return or by raising)."""

    def __init__(self, stop_at: int | None = None, raise_stop: bool = False) -> None:
        self.calls: list[tuple[int, str, float, torch.Tensor | None]] = []
        self.stop_at, self.raise_stop = stop_at, raise_stop

    def __call__(self, step, stage, loss, preview):
        self.calls.append((step, stage, loss, None if preview is None else preview.clone()))
        if self.stop_at is not None and len(self.calls) >= self.stop_at:
            if self.raise_stop:
                raise StopRestoration()
            return False
        return True


CRI_QUICK = dict(offset_steps=6, tuning_steps=4, n_samples=200, perceptual="mse")


def test_restore_reports_every_step_with_stages_losses_and_previews(prior, clean):
    log = Log()
    y = parse_task("inpaint", mask=center_box_mask((32, 32)))(clean)
    result = ganprior.restore(y, task="inpaint", mask="center", method="cri", model=prior, class_index=1,
                              options=CRI_QUICK, progress=False, callback=log, preview_every=3)
    steps = [c[0] for c in log.calls]
    assert steps == list(range(10))  # one call per optimisation step, numbered across stages
    assert [c[1] for c in log.calls] == ["offset"] * 6 + ["pivotal-tuning"] * 4
    assert all(math.isfinite(c[2]) for c in log.calls)
    assert [c[2] for c in log.calls] == [e["loss"] for e in result.losses]
    with_preview = [c[0] for c in log.calls if c[3] is not None]
    assert with_preview == [0, 3, 6, 9]
    for _, _, _, preview in log.calls:
        if preview is not None:  # the photo-size fused restoration: observed pixels are the input's
            assert preview.shape == y.shape and torch.isfinite(preview).all()
            observed = center_box_mask((32, 32)).bool().expand_as(y)
            assert torch.allclose(preview[observed], y.clamp(-1, 1)[observed], atol=1e-6)
    assert result.stopped is None and not result.result.interrupted


@pytest.mark.parametrize("raise_stop", [False, True])
def test_returning_false_or_raising_stop_ends_the_run_with_the_best_state(prior, clean, raise_stop):
    deg = parse_task("colorize")
    log = Log(stop_at=4, raise_stop=raise_stop)
    method = get_method_class("wplus")(steps=50, n_samples=200, w_avg_samples=200, perceptual="mse")
    result = method.run(prior, deg, deg(clean), class_index=1, progress=False, callback=log)
    assert len(log.calls) == 4 and len(result.losses) == 4
    assert result.interrupted and "stopped on request at wplus step 3" in result.stopped
    result.raise_if_stopped()  # a requested stop is no error
    with torch.no_grad():  # the kept latent is the one with the lowest loss seen
        kept = deg(prior.synthesis(result.latent, prior.class_matrix(1, 1))).sub(deg(clean)).square().mean()
    assert float(kept) == pytest.approx(min(e["loss"] for e in result.losses), rel=1e-4)


def test_stop_in_the_first_stage_skips_the_later_ones_and_restore_still_returns_a_result(prior, clean):
    log = Log(stop_at=2)
    y = parse_task("colorize")(clean)
    result = ganprior.restore(y, task="colorize", method="cri", model=prior, class_index=1, options=CRI_QUICK,
                              progress=False, callback=log)
    assert [c[1] for c in log.calls] == ["offset", "offset"]
    assert result.result.interrupted and not result.result.generator_delta  # tuning never ran
    assert result.image.shape == y.shape and torch.isfinite(result.image).all()


def test_dgp_loop_reports_its_stages_and_stops_on_request():
    prior = tiny_biggan()
    deg = parse_task("colorize")
    with torch.no_grad():
        clean = prior.synthesis(torch.zeros(1, 1, prior.z_dim), prior.class_matrix(3, 1))
    method = get_method_class("dgp")(table="fast", schedule="colorize", select_num=4, max_stage_steps=3)
    full = Log()
    method.run(prior, deg, deg(clean), class_index=3, progress=False, callback=full)
    assert [c[0] for c in full.calls] == list(range(len(full.calls))) and len(full.calls) > 3
    assert full.calls[0][1] == "stage1" and full.calls[-1][1].startswith("stage")
    assert all(c[3] is not None and c[3].shape == (1, 3, 32, 32) for c in full.calls)
    stopped = Log(stop_at=2)
    result = method.run(prior, deg, deg(clean), class_index=3, progress=False, callback=stopped)
    assert len(stopped.calls) == 2 and result.interrupted and torch.isfinite(result.image).all()
