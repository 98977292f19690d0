"""Aligned cartoon faces, rendered reproducibly from explicit seeded parameters (issue 23).

Why: the emoji prior stands for the diverse class-conditional setting of the papers; this set stands
for the *aligned* one (StyleGAN2 on FFHQ): one mode with variation, unlimited data, and every image
knows what its face really was, so restorations can be scored by attribute accuracy.

Two styles (the two classes of the prior), drawn by pinned npm packages through ``faces_js/render.mjs``:

* ``avataaars``: ``@dicebear/avataaars`` 9.4.3 (code MIT; the Avataaars design by Pablo Stanley is
  "free for personal and commercial use");
* ``facesjs``: ``facesjs`` 5.0.3 (Apache-2.0);

rasterised by ``@resvg/resvg-js`` 2.6.2 at :data:`RENDER_SIZE` px on white, then resized here to 32
and 64 px. An image is a pure function of ``(style, seed)``: the renderer seeds its PRNG with
``"<style>:<seed>"`` and passes every drawn parameter explicitly, and returns those parameters with
the image. Train seeds are ``0 .. n-1``; held-out seeds start at :data:`TEST_SEED_OFFSET` (disjoint).
The test split with its labels ships as ``ganprior/assets/faces32/faces_test.npz``, so tests and CI
need no node.

Labels: ``labels`` is the style (0 avataaars, 1 facesjs). ``attrs`` is ``[N, A]`` int16, one column
per categorical attribute in :func:`attribute_names` (``"<style>.<name>"``, e.g. ``avataaars.eyes``,
``facesjs.eye.id``), the index into that attribute's vocabulary, ``-1`` for the other style's columns.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ganprior.data.emoji import SPLITS, _atomic_savez, render_on_white

STYLES: tuple[str, ...] = ("avataaars", "facesjs")
RESOLUTIONS: tuple[int, ...] = (32, 64)
RENDER_SIZE = 128
TEST_SEED_OFFSET = 1_000_000_000
TEST_ASSET = "faces_test.npz"
JS_DIR = Path(__file__).with_name("faces_js")


class FacesDataError(RuntimeError):
    """The renderer, its npm packages, or a faces dataset file is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class PinnedPackage:
    """One npm package of the renderer, at the version and npm sha512 integrity it is pinned to."""

    name: str
    version: str
    integrity: str
    licence: str


PACKAGES: tuple[PinnedPackage, ...] = (
    PinnedPackage("@dicebear/core", "9.4.3",
                  "sha512-9ITrQI57k3p5hKuU8HZJ1d0kPdrmTKEJDOdlKQ8CpaChbtmnD1R+dtWmNz5IesYThXM8F64pJ0ZvJ2rsY8Hciw==",
                  "MIT"),
    PinnedPackage("@dicebear/avataaars", "9.4.3",
                  "sha512-LNIZNb1TaXhL2/OfJK+lmw8Kkbn6eot1FHiLoU2/AzOmjSQQVJC0ZvwrZ/tdQEIGeMPu5nhJLmNwH/kFMoF+Tw==",
                  "MIT code; Avataaars design free for personal and commercial use"),
    PinnedPackage("facesjs", "5.0.3",
                  "sha512-oOlOcjkjgkc9bl8v8bBUSC7h5uTiw33xkUm75i5I84iz6U3TmaJEJZD+k49ksYGAJ8GQ1jETg4ImrIN8LMS8cA==",
                  "Apache-2.0"),
    PinnedPackage("@resvg/resvg-js", "2.6.2",
                  "sha512-xBaJish5OeGmniDj9cW5PRa/PtmuVU3ziqrbr5xJj901ZDN4TosrVaNZpEiLZAxdfnhAe7uQ7QFWfjPe9d9K2Q==",
                  "MPL-2.0"),
)


# ----- the node renderer ---------------------------------------------------------------------
def check_renderer(js_dir: Path = JS_DIR, install: bool = True) -> None:
    """Make sure ``js_dir/node_modules`` holds exactly the pinned packages (``npm ci`` if absent).

    ``npm ci`` verifies every tarball against ``package-lock.json``; here the lock file's integrity
    and the installed versions are checked against :data:`PACKAGES`, so neither can drift silently.
    """
    if shutil.which("node") is None:
        raise FacesDataError("`node` is not installed: the faces renderer needs Node.js (apt-get install nodejs npm)")
    lock = json.loads((js_dir / "package-lock.json").read_text())["packages"]
    for pkg in PACKAGES:
        entry = lock.get(f"node_modules/{pkg.name}", {})
        if (entry.get("version"), entry.get("integrity")) != (pkg.version, pkg.integrity):
            raise FacesDataError(f"{js_dir / 'package-lock.json'} does not pin {pkg.name}@{pkg.version} "
                                 "with the expected integrity")
    if not (js_dir / "node_modules").is_dir() and install:
        if shutil.which("npm") is None:
            raise FacesDataError(f"{js_dir / 'node_modules'} is missing and `npm` is not installed to fetch it")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=js_dir, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise FacesDataError(f"`npm ci` in {js_dir} failed: {done.stderr.strip()[-500:]}")
    for pkg in PACKAGES:
        manifest = js_dir / "node_modules" / pkg.name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != pkg.version:
            raise FacesDataError(f"{manifest.parent} is not {pkg.name}@{pkg.version}: run `npm ci` in {js_dir}")


def _node(args: list[str], js_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(["node", "render.mjs", *args], cwd=js_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def renderer_vocab(js_dir: Path = JS_DIR) -> dict[str, dict[str, list[str]]]:
    """style -> attribute -> the values the renderer draws from (its label vocabulary)."""
    proc = _node(["vocab"], js_dir)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise FacesDataError(f"render.mjs vocab failed: {err.strip()[-500:]}")
    return json.loads(out)


def render_records(style: str, start: int, count: int, js_dir: Path = JS_DIR,
                   size: int = RENDER_SIZE) -> Iterator[dict]:
    """Yield ``{style, seed, params, png}`` (PNG bytes) for seeds ``start .. start+count-1`` in order."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    proc = _node(["render", style, str(start), str(count), str(size)], js_dir)
    n = 0
    for line in proc.stdout:
        record = json.loads(line)
        record["png"] = base64.b64decode(record["png"])
        n += 1
        yield record
    err = proc.stderr.read()
    if proc.wait() != 0 or n != count:
        raise FacesDataError(f"render.mjs {style} {start} {count} gave {n} images: {err.strip()[-500:]}")


# ----- labels --------------------------------------------------------------------------------
def attribute_names(vocab: dict[str, dict[str, list[str]]]) -> list[str]:
    """``"<style>.<attribute>"`` for every categorical attribute, in the renderer's order."""
    return [f"{style}.{name}" for style in STYLES for name in vocab[style]]


def _lookup(params: dict, path: str) -> object:
    """``params["face"]["eye"]["id"]`` for facesjs's ``"eye.id"``; gender/race sit at the top level."""
    node: object = params if path in ("gender", "race") else params["face"]
    for key in path.split("."):
        node = node[key]  # type: ignore[index]
    return node


def labels_from_params(style: str, params: dict, vocab: dict[str, dict[str, list[str]]]) -> np.ndarray:
    """The ``attrs`` row of one image: vocabulary index per attribute, -1 for the other style's."""
    row = np.full(len(attribute_names(vocab)), -1, np.int16)
    column = 0
    for s in STYLES:
        for name, values in vocab[s].items():
            if s == style:
                value = params[name] if s == "avataaars" else _lookup(params, name)
                if value not in values:
                    raise FacesDataError(f"{style} parameter {name}={value!r} is not in the renderer's vocabulary")
                row[column] = values.index(value)
            column += 1
    return row


def vocab_arrays(vocab: dict[str, dict[str, list[str]]]) -> dict[str, np.ndarray]:
    """The vocabulary as npz arrays: ``vocab/<style>.<attribute>`` -> the values' names."""
    return {f"vocab/{s}.{name}": np.array(values) for s in STYLES for name, values in vocab[s].items()}


def vocab_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, list[str]]]:
    """Inverse of :func:`vocab_arrays` (npz keeps the insertion order of its arrays)."""
    vocab: dict[str, dict[str, list[str]]] = {s: {} for s in STYLES}
    for key, values in arrays.items():
        if key.startswith("vocab/"):
            style, name = key[len("vocab/"):].split(".", 1)
            vocab[style][name] = [str(v) for v in values]
    return vocab


# ----- building ------------------------------------------------------------------------------
def _render_split(count_per_style: int, seed_offset: int, js_dir: Path, vocab: dict,
                  desc: str) -> dict[str, list]:
    out: dict[str, list] = {"images": {r: [] for r in RESOLUTIONS}, "labels": [], "seeds": [], "attrs": [],
                            "params": []}
    for style_id, style in enumerate(STYLES):
        records = render_records(style, seed_offset, count_per_style, js_dir)
        for record in tqdm(records, total=count_per_style, desc=f"{desc} {style}", unit="img", mininterval=30):
            for res in RESOLUTIONS:
                out["images"][res].append(render_on_white(record["png"], res))
            out["labels"].append(style_id)
            out["seeds"].append(record["seed"])
            out["attrs"].append(labels_from_params(style, record["params"], vocab))
            out["params"].append(json.dumps(record["params"], sort_keys=True, separators=(",", ":")))
    return out


def build_faces_dataset(cache_dir: str | Path, train_per_style: int, test_per_style: int,
                        asset_path: str | Path | None = None, js_dir: Path = JS_DIR) -> dict:
    """Render both splits and write ``faces_{32,64}.npz`` to ``cache_dir`` plus the shipped test asset.

    The npz files use the emoji layout the trainer reads (``images``, ``labels``, ``vendors`` (= the
    style), ``split``, ``classes``, ``vendor_names``, ``split_names``) plus ``seeds``, ``attrs``,
    ``attr_names``, ``params`` (JSON per image) and the vocabulary. Returns the counts.
    """
    if not 0 < train_per_style < TEST_SEED_OFFSET or test_per_style < 1:
        raise ValueError(f"need 0 < train images per style < {TEST_SEED_OFFSET} and at least one test image")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    check_renderer(js_dir)
    vocab = renderer_vocab(js_dir)
    splits = {"train": _render_split(train_per_style, 0, js_dir, vocab, "train"),
              "test": _render_split(test_per_style, TEST_SEED_OFFSET, js_dir, vocab, "test")}
    common = {"classes": np.array(STYLES), "vendor_names": np.array(STYLES), "split_names": np.array(SPLITS),
              "attr_names": np.array(attribute_names(vocab)), **vocab_arrays(vocab)}

    def table(key: str, dtype: type) -> np.ndarray:
        return np.concatenate([np.asarray(splits[s][key], dtype) for s in SPLITS])

    labels = table("labels", np.int64)
    meta = {"labels": labels, "vendors": labels, "seeds": table("seeds", np.int64), "attrs": table("attrs", np.int16),
            "params": table("params", str),
            "split": np.concatenate([np.full(len(splits[s]["labels"]), i, np.uint8) for i, s in enumerate(SPLITS)])}
    for res in RESOLUTIONS:
        images = np.stack([im for s in SPLITS for im in splits[s]["images"][res]])
        _atomic_savez(cache_dir / f"faces_{res}.npz", images=images, **meta, **common)

    test = splits["test"]
    asset_path = Path(asset_path) if asset_path is not None else packaged_asset_path()
    asset_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_savez(asset_path, **{f"images_{res}": np.stack(test["images"][res]) for res in RESOLUTIONS},
                  labels=np.asarray(test["labels"], np.int64), seeds=np.asarray(test["seeds"], np.int64),
                  attrs=np.asarray(test["attrs"], np.int16), params=np.asarray(test["params"], str), **common)
    counts = {"train_per_style": train_per_style, "test_per_style": test_per_style,
              "train_seeds": [0, train_per_style - 1],
              "test_seeds": [TEST_SEED_OFFSET, TEST_SEED_OFFSET + test_per_style - 1],
              "packages": {p.name: p.version for p in PACKAGES}, "test_asset_bytes": asset_path.stat().st_size}
    (cache_dir / "faces_counts.json").write_text(json.dumps(counts, indent=2))
    return counts


def packaged_asset_path() -> Path:
    return Path(str(resources.files("ganprior"))) / "assets" / "faces32" / TEST_ASSET


# ----- loading -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CartoonFaces:
    """Held-out faces (uint8 NHWC on white) with style labels, attribute labels and render parameters."""

    images: np.ndarray
    labels: np.ndarray
    seeds: np.ndarray
    attrs: np.ndarray
    attr_names: tuple[str, ...]
    params: tuple[str, ...]
    vocab: dict[str, dict[str, list[str]]]
    classes: tuple[str, ...] = STYLES

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])


def load_faces_test(resolution: int = 32, path: str | Path | None = None) -> CartoonFaces:
    """The held-out split shipped with the package (seeds from :data:`TEST_SEED_OFFSET`, never trained on)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"the faces test split exists at {RESOLUTIONS} px, not {resolution}")
    path = Path(path) if path is not None else packaged_asset_path()
    if not path.exists():
        raise FacesDataError(f"{path} not found: build it with `ganprior data build-faces`")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise FacesDataError(f"{path} is not a readable npz file: {err}") from err
    needed = (f"images_{resolution}", "labels", "seeds", "attrs", "attr_names", "params")
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise FacesDataError(f"{path} lacks arrays {missing}: not a faces test split")
    return CartoonFaces(arrays[f"images_{resolution}"], arrays["labels"], arrays["seeds"], arrays["attrs"],
                        tuple(str(n) for n in arrays["attr_names"]), tuple(str(p) for p in arrays["params"]),
                        vocab_from_arrays(arrays))
