"""Placing photos of any size/aspect on the generator canvas and mapping results back."""

from __future__ import annotations

import pytest
import torch

from ganprior.fitting import FitError, content_weight, from_canvas, mask_to_canvas, place, to_canvas


def test_letterbox_keeps_the_whole_photo_and_marks_padding_unobserved():
    p = place((29, 45), (32, 32), "letterbox")
    top, left, bh, bw = p.box
    assert (bw, left) == (32, 0) and bh == round(29 * 32 / 45) and top == (32 - bh) // 2
    assert p.crop == (0, 0, 29, 45)
    weight = content_weight(p)
    assert float(weight.sum()) == bh * bw and float(weight[..., :top, :].sum()) == 0


def test_crop_covers_the_canvas_with_the_centre():
    p = place((29, 45), (32, 32), "crop")
    assert p.box == (0, 0, 32, 32)
    top, left, ch, cw = p.crop
    assert ch == 29 and cw == 29 and left == (45 - 29) // 2


@pytest.mark.parametrize("mode", ["letterbox", "crop"])
def test_round_trip_returns_the_photo_size_and_content(mode):
    photo = torch.linspace(-1, 1, 29 * 45).reshape(1, 1, 29, 45).expand(1, 3, -1, -1).contiguous()
    p = place(photo.shape[-2:], (32, 32), mode)
    canvas = to_canvas(photo, p)
    assert canvas.shape == (1, 3, 32, 32)
    back = from_canvas(canvas, p, background=photo)
    assert back.shape == photo.shape
    assert float((back - photo).abs().mean()) < 0.05  # a smooth ramp survives two resamplings


def test_scaled_placement_maps_a_low_res_fit_to_the_output_size():
    p = place((29, 45), (8, 8), "letterbox")  # x4 SR: the observation canvas is R/4
    q = p.scaled((32, 32), (116, 180))
    assert q.crop == (0, 0, 116, 180) and q.box[3] == 32
    out = from_canvas(torch.zeros(1, 3, 32, 32), q)
    assert out.shape == (1, 3, 116, 180)


def test_mask_on_canvas_is_conservative_binary_and_pads_unobserved():
    mask = torch.ones(1, 1, 29, 45)
    mask[..., 10:15, 20:25] = 0
    p = place((29, 45), (32, 32), "letterbox")
    m = mask_to_canvas(mask, p)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    hole_fraction_canvas = 1 - float(m[..., p.box[0]:p.box[0] + p.box[2], :].mean())
    assert hole_fraction_canvas >= 25 / (29 * 45)  # holes never shrink
    assert float(m[..., : p.box[0], :].sum()) == 0  # padding is not observed


def test_bad_fit_requests_are_clear_errors():
    with pytest.raises(FitError, match="unknown fit mode"):
        place((10, 10), (32, 32), "stretch")
    with pytest.raises(FitError, match="cannot place"):
        place((0, 10), (32, 32))
    p = place((29, 45), (32, 32), "crop")
    with pytest.raises(FitError, match="background"):
        from_canvas(torch.zeros(1, 3, 32, 32), p)
