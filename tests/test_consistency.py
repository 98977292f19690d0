"""Data consistency: every linear degradation's fusion reproduces the observation, A(fused) = y,
and observations are first moved into what the operator can observe."""

from __future__ import annotations

import pytest
import torch

from ganprior.degradations import Blur, Colorization, Inpainting, SuperResolution, center_box_mask, parse_task, to_gray

CONSISTENT = {"colorize_fusion": "lab-luma", "sr_fusion": "project", "blur_fusion": "project"}


def _rmse_255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).square().mean().sqrt() * 127.5)


@pytest.mark.parametrize("kernel", ["bicubic", "lanczos", "area", "dgp-lanczos2"])
@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_sr_projection_reproduces_the_observation_for_every_kernel_and_factor(kernel, factor):
    g = torch.Generator().manual_seed(factor)
    clean, guess = (torch.rand(2, 1, 3, 64, 88, generator=g) * 2 - 1).unbind(0)
    op = SuperResolution(factor, kernel, fusion="project")
    y = op(clean)
    assert _rmse_255(op(guess), y) > 3  # the guess alone is far from the observation
    fused = op.fuse(guess, y)
    assert _rmse_255(op(fused), y) < 1e-3


def test_sr_projection_keeps_what_the_observation_cannot_see():
    """Range–null-space: a restoration that already reproduces y is returned unchanged."""
    clean = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    op = SuperResolution(4, fusion="project")
    assert torch.allclose(op.fuse(clean, op(clean)), clean, atol=1e-5)


@pytest.mark.parametrize("kind,size", [("gaussian", 2.0), ("gaussian", 1.0), ("box", 3)])
def test_blur_projection_reproduces_the_observation(kind, size):
    clean = torch.rand(1, 3, 48, 60, generator=torch.Generator().manual_seed(2)) * 2 - 1
    op = Blur(size, kind, fusion="project", noise_sigma=0.0)  # noise-free: the floor is 8-bit rounding
    y = op(clean)
    fused = op.fuse(torch.zeros_like(clean), y)
    assert _rmse_255(op(torch.zeros_like(clean)), y) > 5
    assert _rmse_255(op(fused), y) < 1.0


@pytest.mark.parametrize("task", ["colorize", "inpaint", "sr4", "blur2", "sr4+colorize", "sr4+colorize+inpaint",
                                  "sr2+inpaint", "colorize+blur1"])
def test_every_linear_task_and_composition_fuses_to_a_consistent_image(task):
    g = torch.Generator().manual_seed(3)
    clean, guess = (torch.rand(2, 1, 3, 64, 64, generator=g) * 2 - 1).unbind(0)
    low = 16 if task.startswith("sr4") else 32 if task.startswith("sr2") else 64
    mask = center_box_mask((low, low)) if "inpaint" in task else None
    op = parse_task(task, mask=mask, **CONSISTENT)
    for blur in (o for o in op if isinstance(o, Blur)):
        blur.noise_sigma = 0.0  # noise-free observation: blur reproduces it to 8-bit rounding (else: its noise level)
    y = op(clean)
    fused = op.fuse(guess, y)
    assert _rmse_255(op(guess), y) > 10
    assert _rmse_255(op(fused), y) < 1.0


def test_colorization_fuses_with_the_true_grey_of_a_colour_observation():
    """A colour photo's Rec.601 grey, not its red channel, is what the fused image keeps."""
    photo = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    guess = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    for fusion in ("lab-luma", "luma"):
        fused = Colorization(fusion=fusion).fuse(guess, photo)
        assert float((to_gray(fused) - to_gray(photo)).abs().mean()) * 127.5 < 1.0


def test_observations_are_projected_into_the_operators_range():
    photo = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(6)) * 2 - 1
    grey = Colorization().project_observation(photo)
    assert torch.allclose(grey, to_gray(photo).expand(-1, 3, -1, -1))
    mask = center_box_mask((16, 16))
    holed = Inpainting(mask).project_observation(photo)
    assert torch.equal(holed, photo * mask)  # hole content cannot reach the loss or the class estimate
    both = parse_task("colorize+inpaint", mask=mask).project_observation(photo)
    assert torch.allclose(both, to_gray(photo).expand(-1, 3, -1, -1) * mask)
    assert torch.equal(SuperResolution(4).project_observation(photo), photo)
