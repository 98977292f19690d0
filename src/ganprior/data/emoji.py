"""The emoji dataset of the embedded default prior, built reproducibly from three npm packages.

Why emoji: they are the only sizeable, colourful, class-labelled image set that registries
ship with permissive licences (see docs/training/ and ``NOTICE``):

* Noto (``emoji-datasource-google``, Apache-2.0) and Twemoji (``emoji-datasource-twitter``,
  graphics CC-BY-4.0): 64x64 PNG, labelled by the package's ``emoji.json``;
* Microsoft Fluent 3D (``@lobehub/fluent-emoji-3d``, MIT): 256x256 WebP named by codepoint.
  Its flags are copies of Noto's, so they are dropped.

Labels are the 9 ``emoji.json`` categories ("Component" is ignored). Images are alpha-composited
on white. A held-out test split (about 10% of the emoji, chosen by a seeded hash, with *every*
vendor's and skin tone's rendition of them) is never trained on: it is the benchmark's data and
ships inside the package as ``ganprior/assets/emoji_test.npz``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ganprior.atomic import atomic_path

CATEGORIES: tuple[str, ...] = (
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
)
SPLITS: tuple[str, ...] = ("train", "test")
RESOLUTIONS: tuple[int, ...] = (32, 64)
SPLIT_SEED = "ganprior-emoji-v1"
TEST_FRACTION = 0.10
DEFAULT_MAX_SKIN_VARIANTS = 1
TEST_ASSET = "emoji_test.npz"


class EmojiDataError(RuntimeError):
    """The emoji packages or dataset files are missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class NpmSource:
    """One pinned npm package carrying emoji images (npm's own sha512 integrity is checked)."""

    vendor: str
    package: str
    version: str
    integrity: str
    licence: str

    @property
    def tarball_name(self) -> str:
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"


SOURCES: tuple[NpmSource, ...] = (
    NpmSource(
        "noto",
        "emoji-datasource-google",
        "16.0.0",
        "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
        "Apache-2.0",
    ),
    NpmSource(
        "twemoji",
        "emoji-datasource-twitter",
        "16.0.0",
        "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
        "CC-BY-4.0",
    ),
    NpmSource(
        "fluent3d",
        "@lobehub/fluent-emoji-3d",
        "1.1.0",
        "sha512-Wlq2lVStTnr8BDpIJ0pEnTKO4LuDxxqTEhTvRtD1DLRF0me7ogeRQjKoehDHXuVJ2Qaecgl5wRBv60lUAG3h7g==",
        "MIT",
    ),
)
VENDORS: tuple[str, ...] = tuple(s.vendor for s in SOURCES)
#: emoji-datasource folder names of the two vendors it carries.
_DATASOURCE_DIRS = {"noto": "google", "twemoji": "twitter"}


# ----- fetching ------------------------------------------------------------------------------
def _sri_sha512(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def fetch_packages(cache_dir: str | Path) -> dict[str, Path]:
    """``npm pack`` the pinned packages into ``cache_dir`` (once) and verify their integrity."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarballs = {}
    for src in SOURCES:
        path = cache_dir / src.tarball_name
        if not path.exists():
            if shutil.which("npm") is None:
                raise EmojiDataError(f"{path} is missing and `npm` is not installed to fetch {src.package}")
            spec = f"{src.package}@{src.version}"
            done = subprocess.run(
                ["npm", "pack", spec, "--pack-destination", str(cache_dir)], capture_output=True, text=True
            )
            if done.returncode != 0 or not path.exists():
                raise EmojiDataError(f"`npm pack {spec}` failed: {done.stderr.strip()[-500:]}")
        if _sri_sha512(path) != src.integrity:
            raise EmojiDataError(f"{path} does not match the pinned npm integrity of {src.package}@{src.version}")
        tarballs[src.vendor] = path
    return tarballs


# ----- catalogue -----------------------------------------------------------------------------
def _codepoint_key(unified: str) -> tuple[int, ...]:
    """Codepoints without variation selector 16, so 'a9-fe0f' and '00A9' name the same emoji."""
    return tuple(int(part, 16) for part in unified.split("-") if int(part, 16) != 0xFE0F)


def _in_test_split(base_unified: str) -> bool:
    digest = hashlib.sha256(f"{SPLIT_SEED}:{base_unified.upper()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < TEST_FRACTION


def _kept_skin_variants(entry: dict, max_skin_variants: int) -> list[dict]:
    """A deterministic, tone-diverse subset: ranked by a hash so not every emoji keeps the same tone."""
    variants = list((entry.get("skin_variations") or {}).values())
    variants.sort(key=lambda v: hashlib.sha256(f"{SPLIT_SEED}:{v['unified']}".encode()).digest())
    return variants[:max_skin_variants]


@dataclass(frozen=True)
class Rendition:
    """One emoji codepoint sequence to render (a base glyph or one of its skin-tone variants)."""

    unified: str
    base: str
    category: str
    datasource_image: str
    has_image: dict[str, bool]


def catalogue(emoji_json: list[dict], max_skin_variants: int = DEFAULT_MAX_SKIN_VARIANTS) -> list[Rendition]:
    """All renditions to render, in emoji.json's display order, skin tones capped per emoji."""
    out = []
    for entry in sorted(emoji_json, key=lambda e: e["sort_order"]):
        if entry["category"] not in CATEGORIES:
            continue
        for item in [entry, *_kept_skin_variants(entry, max_skin_variants)]:
            out.append(
                Rendition(
                    unified=item["unified"],
                    base=entry["unified"],
                    category=entry["category"],
                    datasource_image=item["image"],
                    has_image={v: bool(item.get(f"has_img_{d}")) for v, d in _DATASOURCE_DIRS.items()},
                )
            )
    return out


# ----- rendering -----------------------------------------------------------------------------
def render_on_white(data: bytes, resolution: int) -> np.ndarray:
    """Decode an RGBA(/palette) image, composite it on white, pad to square, resize: uint8 HWC."""
    with Image.open(io.BytesIO(data)) as im:
        rgba = im.convert("RGBA")
    side = max(rgba.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(rgba, ((side - rgba.width) // 2, (side - rgba.height) // 2))
    rgb = canvas.convert("RGB")
    if side != resolution:
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


def _tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _vendor_images(vendor: str, files: dict[str, bytes], renditions: list[Rendition]) -> dict[str, bytes]:
    """unified -> image bytes for the renditions this vendor draws (Fluent's flags excluded)."""
    if vendor in _DATASOURCE_DIRS:
        folder = f"package/img/{_DATASOURCE_DIRS[vendor]}/64/"
        return {
            r.unified: files[folder + r.datasource_image]
            for r in renditions
            if r.has_image[vendor] and folder + r.datasource_image in files
        }
    by_key = {
        _codepoint_key(Path(name).stem): data
        for name, data in files.items()
        if name.startswith("package/assets/") and name.endswith(".webp")
    }
    return {
        r.unified: by_key[_codepoint_key(r.unified)]
        for r in renditions
        if r.category != "Flags" and _codepoint_key(r.unified) in by_key
    }


# ----- building ------------------------------------------------------------------------------
def build_emoji_dataset(
    cache_dir: str | Path,
    asset_path: str | Path | None = None,
    max_skin_variants: int = DEFAULT_MAX_SKIN_VARIANTS,
) -> dict:
    """Fetch the packages into ``cache_dir/npm`` and write ``emoji_{32,64}.npz`` to ``cache_dir`` (plus the shipped test asset).

    Each npz holds uint8 NHWC ``images`` and per-image ``labels``, ``vendors``, ``codepoints``
    (index into ``codepoint_names``), ``base_codepoints`` (the emoji a skin tone belongs to) and
    ``split`` (index into ``split_names``), plus ``classes`` and ``vendor_names``.
    Returns the counts per class / vendor / split (also written as ``emoji_counts.json``).
    """
    cache_dir = Path(cache_dir)
    tarballs = fetch_packages(cache_dir / "npm")
    files = {vendor: _tar_members(path) for vendor, path in tarballs.items()}
    emoji_json = json.loads(files["noto"]["package/emoji.json"])
    renditions = catalogue(emoji_json, max_skin_variants)
    by_unified = {r.unified: r for r in renditions}
    codepoint_names = sorted({r.unified for r in renditions} | {r.base for r in renditions})
    codepoint_index = {u: i for i, u in enumerate(codepoint_names)}

    records, images = [], {res: [] for res in RESOLUTIONS}
    for vendor_id, vendor in enumerate(VENDORS):
        sources = _vendor_images(vendor, files[vendor], renditions)
        for unified, data in tqdm(sources.items(), desc=f"render {vendor}", unit="img"):
            r = by_unified[unified]
            records.append(
                (CATEGORIES.index(r.category), vendor_id, codepoint_index[unified], codepoint_index[r.base],
                 SPLITS.index("test") if _in_test_split(r.base) else SPLITS.index("train"))
            )
            for res in RESOLUTIONS:
                images[res].append(render_on_white(data, res))
    table = np.asarray(records, dtype=np.int32)
    meta = {
        "labels": table[:, 0].astype(np.int64),
        "vendors": table[:, 1].astype(np.int64),
        "codepoints": table[:, 2],
        "base_codepoints": table[:, 3],
        "split": table[:, 4].astype(np.uint8),
        "classes": np.array(CATEGORIES),
        "vendor_names": np.array(VENDORS),
        "split_names": np.array(SPLITS),
        "codepoint_names": np.array(codepoint_names),
    }
    for res in RESOLUTIONS:
        _atomic_savez(cache_dir / f"emoji_{res}.npz", images=np.stack(images[res]), **meta)

    test = meta["split"] == SPLITS.index("test")
    asset_path = Path(asset_path) if asset_path is not None else _packaged_asset_path()
    asset_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_savez(
        asset_path,
        **{f"images_{res}": np.stack(images[res])[test] for res in RESOLUTIONS},
        labels=meta["labels"][test],
        vendors=meta["vendors"][test],
        codepoints=np.array(codepoint_names)[meta["codepoints"][test]],
        classes=meta["classes"],
        vendor_names=meta["vendor_names"],
    )
    counts = dataset_counts(meta)
    counts["max_skin_variants"] = max_skin_variants
    counts["test_asset_bytes"] = asset_path.stat().st_size
    (cache_dir / "emoji_counts.json").write_text(json.dumps(counts, indent=2))
    return counts


def dataset_counts(meta: dict) -> dict:
    """Images per split x (class, vendor), and how many distinct emoji each split holds."""
    out = {}
    for s, name in enumerate(SPLITS):
        sel = meta["split"] == s
        out[name] = {
            "images": int(sel.sum()),
            "emoji": int(len(np.unique(meta["base_codepoints"][sel]))),
            "per_class": {CATEGORIES[k]: int(n) for k, n in sorted(Counter(meta["labels"][sel].tolist()).items())},
            "per_vendor": {VENDORS[k]: int(n) for k, n in sorted(Counter(meta["vendors"][sel].tolist()).items())},
        }
    return out


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # the temporary name ends in .npz, so numpy adds no suffix
        np.savez_compressed(tmp, **arrays)


def _packaged_asset_path() -> Path:
    return Path(str(resources.files("ganprior"))) / "assets" / TEST_ASSET


# ----- loading -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmojiImages:
    """Images (uint8 NHWC, white background) with their class labels and vendor ids."""

    images: np.ndarray
    labels: np.ndarray
    vendors: np.ndarray
    classes: tuple[str, ...]
    vendor_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])


def _checked(path: Path, needed: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.exists():
        raise EmojiDataError(f"{path} not found: build it with `ganprior data build`")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise EmojiDataError(f"{path} is not a readable npz file: {err}") from err
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise EmojiDataError(f"{path} lacks arrays {missing}: not an emoji dataset file")
    return arrays


def _names(array: np.ndarray) -> tuple[str, ...]:
    return tuple(str(name) for name in array)


def load_emoji_npz(path: str | Path, split: str = "train") -> EmojiImages:
    """One split (``train``, ``test`` or ``all``) of a built ``emoji_{res}.npz``."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
    f = _checked(Path(path), ("images", "labels", "vendors", "split", "classes", "vendor_names"))
    sel = np.ones(len(f["labels"]), bool) if split == "all" else f["split"] == SPLITS.index(split)
    return EmojiImages(
        f["images"][sel], f["labels"][sel], f["vendors"][sel], _names(f["classes"]), _names(f["vendor_names"])
    )


def load_emoji_test(resolution: int = 32, path: str | Path | None = None) -> EmojiImages:
    """The held-out benchmark split shipped with the package (never used in training)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"the emoji test split exists at {RESOLUTIONS} px, not {resolution}")
    path = Path(path) if path is not None else _packaged_asset_path()
    f = _checked(path, (f"images_{resolution}", "labels", "vendors", "classes", "vendor_names"))
    return EmojiImages(
        f[f"images_{resolution}"], f["labels"], f["vendors"], _names(f["classes"]), _names(f["vendor_names"])
    )
