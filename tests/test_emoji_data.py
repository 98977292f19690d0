"""The emoji dataset: rendering, the by-emoji held-out split, and the test split shipped in the package."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganprior.data import emoji
from ganprior.data.emoji import (
    CATEGORIES,
    EmojiDataError,
    catalogue,
    fetch_packages,
    load_emoji_npz,
    load_emoji_test,
    render_on_white,
)

BUILT_32 = Path(__file__).resolve().parents[1] / "data" / "cache" / "emoji_32.npz"


def _png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def test_render_composites_on_white_and_pads_to_square():
    rgba = np.zeros((8, 4, 4), np.uint8)  # 8 tall, 4 wide
    rgba[..., 0] = 255
    rgba[:, :, 3] = 255
    rgba[0, 0, 3] = 0  # one transparent pixel
    rgba[1, 0, 3] = 128  # one half-transparent red pixel
    out = render_on_white(_png(rgba), 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[:, :2] == 255).all() and (out[:, 6:] == 255).all()  # padding is white
    assert out[0, 2].tolist() == [255, 255, 255]
    assert out[1, 2, 0] == 255 and 120 <= out[1, 2, 1] <= 135  # 50% red over white
    assert out[4, 3].tolist() == [255, 0, 0]


def _entry(unified: str, category: str, order: int, tones: int = 0) -> dict:
    e = {"unified": unified, "image": unified.lower() + ".png", "category": category, "sort_order": order,
         "has_img_google": True, "has_img_twitter": True}
    if tones:
        e["skin_variations"] = {
            f"1F3F{b}": {"unified": f"{unified}-1F3F{b}", "image": f"{unified.lower()}-1f3f{b}.png",
                         "has_img_google": True, "has_img_twitter": b != "B"}
            for b in "BCDEF"[:tones]
        }
    return e


def test_catalogue_drops_components_and_caps_skin_tones():
    emoji_json = [_entry("1F44B", "People & Body", 2, tones=5), _entry("1F3FB", "Component", 1),
                  _entry("1F600", "Smileys & Emotion", 0)]
    rows = catalogue(emoji_json, max_skin_variants=2)
    assert [r.base for r in rows][:1] == ["1F600"]
    assert all(r.category in CATEGORIES for r in rows)
    waves = [r for r in rows if r.base == "1F44B"]
    assert len(waves) == 3 and waves[0].unified == "1F44B"
    assert catalogue(emoji_json, max_skin_variants=2) == rows  # deterministic
    assert len(catalogue(emoji_json, max_skin_variants=0)) == 2


def test_split_is_seeded_hash_of_the_emoji_near_ten_percent():
    codes = [f"{0x1F300 + i:X}" for i in range(4000)]
    held = [emoji._in_test_split(c) for c in codes]
    assert 0.08 < np.mean(held) < 0.12
    assert held == [emoji._in_test_split(c.lower()) for c in codes]


def test_fetch_rejects_a_tarball_that_fails_the_pinned_integrity(tmp_path):
    for src in emoji.SOURCES:
        (tmp_path / src.tarball_name).write_bytes(b"not the real package")
    with pytest.raises(EmojiDataError, match="integrity"):
        fetch_packages(tmp_path)


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(EmojiDataError, match="ganprior data build"):
        load_emoji_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(EmojiDataError, match="lacks arrays"):
        load_emoji_npz(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="split"):
        load_emoji_npz(tmp_path / "other.npz", split="validation")
    with pytest.raises(ValueError, match="not 48"):
        load_emoji_test(48)


@pytest.mark.parametrize("resolution", [32, 64])
def test_shipped_test_split(resolution):
    path = emoji._packaged_asset_path()
    assert path.stat().st_size < 5_000_000
    data = load_emoji_test(resolution)
    assert data.classes == CATEGORIES and data.vendor_names == emoji.VENDORS
    assert data.images.shape[1:] == (resolution, resolution, 3) and data.images.dtype == np.uint8
    assert 400 < len(data) < 1200 and len(data.labels) == len(data)
    assert set(np.unique(data.labels)) == set(range(len(CATEGORIES)))
    corners = data.images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.median(corners) == 255  # composited on white


@pytest.mark.skipif(not BUILT_32.exists(), reason="dataset not built (run `ganprior data build`)")
def test_built_train_split_never_contains_a_held_out_emoji():
    with np.load(BUILT_32) as f:
        names, split = f["codepoint_names"], f["split"]
        train_bases = set(names[f["base_codepoints"][split == 0]])
        test_bases = set(names[f["base_codepoints"][split == 1]])
        test_codes = set(names[f["codepoints"][split == 1]])
    assert train_bases.isdisjoint(test_bases)
    with np.load(emoji._packaged_asset_path()) as f:
        assert set(f["codepoints"]) == test_codes
    train = load_emoji_npz(BUILT_32, "train")
    assert len(train) > 5000 and train.resolution == 32
