"""Image/mask loading, atomic saving, uint8 conversion and contact sheets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.images import (
    ImageLoadError,
    MaskSizeError,
    from_uint8,
    load_image,
    load_mask,
    make_sheet,
    save_image,
    to_uint8,
)

H, W = 37, 53


def rgb_array(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_uint8_round_trip_is_exact_and_rounds_half_up():
    a = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(to_uint8(from_uint8(a)), a)
    rgb = rgb_array()
    t = from_uint8(rgb)
    assert t.shape == (1, 3, H, W) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(to_uint8(t), rgb)
    # 0.5 / 127.5 - 1 lies exactly half-way between codes 0 and 1: rounds up; out of range clamps
    x = torch.tensor([[[0.5 / 127.5 - 1, -3.0, 3.0, 0.0]]], dtype=torch.float64)
    assert to_uint8(x).tolist() == [[1, 0, 255, 128]]


def test_load_image_rgb_gray_rgba_and_16bit(tmp_path):
    rgb = rgb_array()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert torch.equal(load_image(tmp_path / "rgb.png"), from_uint8(rgb))

    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    g = load_image(tmp_path / "gray.png")
    assert g.shape == (1, 3, H, W) and torch.equal(g[:, 0], g[:, 2]) and torch.equal(g[:, :1], from_uint8(gray))

    alpha = np.zeros((H, W), np.uint8)
    alpha[:, : W // 2] = 255
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    img, a = load_image(tmp_path / "rgba.png", return_alpha=True)
    assert torch.equal(img, from_uint8(rgb)) and a.shape == (1, 1, H, W)
    assert a[0, 0, :, : W // 2].eq(1).all() and a[0, 0, :, W // 2 :].eq(0).all()
    assert load_image(tmp_path / "rgb.png", return_alpha=True)[1] is None

    deep = (np.arange(H * W, dtype=np.int64).reshape(H, W) * 31) % 65536
    Image.fromarray(deep.astype(np.uint16)).save(tmp_path / "deep.png")
    d = load_image(tmp_path / "deep.png")
    assert torch.allclose(d[0, 0], torch.from_numpy(deep / 65535.0 * 2 - 1).float(), atol=1e-6)
    assert len(torch.unique(d)) > 256  # more than 8 bits survived


def test_load_image_applies_exif_orientation(tmp_path):
    img = Image.fromarray(rgb_array())
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rotated.png", exif=exif)
    x = load_image(tmp_path / "rotated.png")
    assert x.shape == (1, 3, W, H)
    assert torch.equal(x, from_uint8(np.asarray(img.transpose(Image.Transpose.ROTATE_270))))


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_corrupt_files_raise_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.fromarray(rgb_array(64, 64)).save(tmp_path / "full.png")
        data = (tmp_path / "full.png").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError, match="cannot load .*bad.png"):
        load_image(path)


def test_missing_and_huge_images_are_refused(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")
    Image.new("RGB", (64, 48)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="64x48 = 3,072 pixels exceeds max_pixels=1,000"):
        load_image(tmp_path / "big.png", max_pixels=1000)
    with pytest.raises(ImageLoadError, match="decompression-bomb"):
        load_mask(tmp_path / "big.png", hole_value="black", max_pixels=1000)
    assert load_image(tmp_path / "big.png", max_pixels=3072).shape == (1, 3, 48, 64)


def test_load_mask_polarity_alpha_and_size_checks(tmp_path):
    holes = np.zeros((H, W), bool)
    holes[5:20, 10:30] = True
    Image.fromarray(np.where(holes, 0, 255).astype(np.uint8)).save(tmp_path / "black_holes.png")
    Image.fromarray(np.where(holes, 255, 0).astype(np.uint8)).save(tmp_path / "white_holes.png")
    rgba = np.dstack([rgb_array(), np.where(holes, 0, 255).astype(np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "alpha_holes.png")
    expected = torch.from_numpy(~holes).float()[None, None]
    assert torch.equal(load_mask(tmp_path / "black_holes.png", hole_value="black"), expected)
    assert torch.equal(load_mask(tmp_path / "white_holes.png", hole_value="white"), expected)
    assert torch.equal(load_mask(tmp_path / "alpha_holes.png", hole_value="transparent", size=(H, W)), expected)
    with pytest.raises(ImageLoadError, match="no alpha channel"):
        load_mask(tmp_path / "black_holes.png", hole_value="transparent")
    with pytest.raises(ValueError, match="hole_value must be"):
        load_mask(tmp_path / "black_holes.png", hole_value="grey")  # type: ignore[arg-type]
    with pytest.raises(MaskSizeError, match=f"is {W}x{H} .* image is 64x32"):
        load_mask(tmp_path / "black_holes.png", hole_value="black", size=(32, 64))
    resized = load_mask(tmp_path / "black_holes.png", hole_value="black", size=(2 * H, 2 * W), resize=True)
    assert resized.shape == (1, 1, 2 * H, 2 * W) and torch.equal(resized[..., ::2, ::2], expected)


def test_save_image_round_trips_and_is_atomic(tmp_path):
    x = from_uint8(rgb_array())
    path = save_image(x, tmp_path / "sub" / "out.png")
    assert torch.equal(load_image(path), x)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]  # no temp files left
    mask = torch.zeros(1, 1, H, W)
    mask[..., 3:9, 4:7] = 1
    save_image(mask, tmp_path / "mask.png", value_range=(0, 1))
    assert torch.equal(load_mask(tmp_path / "mask.png", hole_value="black"), mask)


def test_failed_save_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    old = from_uint8(rgb_array(seed=1))
    save_image(old, path)
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(from_uint8(rgb_array(seed=2)), path)
    with pytest.raises(OSError, match="disk full"):
        save_image(old, tmp_path / "new.png")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_save_image_rejects_unknown_suffix_without_leftovers(tmp_path):
    with pytest.raises((ValueError, KeyError)):
        save_image(from_uint8(rgb_array()), tmp_path / "out.notaformat")
    assert list(tmp_path.iterdir()) == []


def test_make_sheet_upscales_small_images_with_nearest_and_captions(tmp_path):
    small = from_uint8(rgb_array(32, 32, seed=3))
    tiny = from_uint8(rgb_array(8, 8, seed=4))
    mask = torch.ones(1, 1, 32, 32)
    sheet = make_sheet([[tiny, small, mask], [small, small]], ["observed", "restored", "mask"], tmp_path / "s.png")
    assert (tmp_path / "s.png").is_file() and Image.open(tmp_path / "s.png").size == sheet.size
    pad, cell, text_h = 4, 128, 14
    assert sheet.size == (3 * (cell + pad) + pad, 2 * (cell + text_h + pad) + pad)
    arr = np.asarray(sheet)
    # cell (0, 1): 32x32 image enlarged 4x by nearest neighbour, so each source pixel is a 4x4 block
    block = arr[pad : pad + cell, 2 * pad + cell : 2 * pad + 2 * cell]
    assert np.array_equal(block, np.repeat(np.repeat(to_uint8(small), 4, axis=0), 4, axis=1))
    # cell (0, 0): 8x8 enlarged 16x
    assert np.array_equal(arr[pad : pad + cell, pad : pad + cell], np.repeat(np.repeat(to_uint8(tiny), 16, 0), 16, 1))
    # captions are drawn below the cells (some dark pixels in the caption strip)
    assert arr[pad + cell : pad + cell + text_h, pad : pad + cell].min() < 128
    with pytest.raises(ValueError, match="at least one"):
        make_sheet([], None)
