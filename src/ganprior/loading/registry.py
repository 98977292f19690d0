"""Known official checkpoints, where they come from, and where they live on this machine.

Every downloadable model is cached as ``<cache>/<model name>/<file name>``, where ``<cache>`` is
``$GANPRIOR_CACHE`` or the platform's user cache directory (``platformdirs``). Downloads go through
``pooch`` (progress bar; SHA-256 verification where a hash is known — the upstream projects publish
none, so such entries are listed as "unverified"). ``GANPRIOR_OFFLINE=1`` forbids any download.
Files that cannot be downloaded automatically (DGP's Google-Drive BigGANs) must be put in place by
hand; the error message says exactly where.

The embedded default model ``emoji32`` ships inside the package as a native file
(``ganprior/assets/emoji32/model.safetensors``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import platformdirs

DEFAULT_MODEL = "emoji32"
EMBEDDED_FILE = "model.safetensors"
EMBEDDED_FEATURE_NET_FILE = "feature_net.safetensors"  # emoji-feature-net (classifier + perceptual)
EMBEDDED_BANKS_FILE = "centroids.safetensors"  # CRI centroid banks of every class


class ModelNotAvailableError(FileNotFoundError):
    """A known model whose files are not on this machine and cannot be fetched now."""


class ChecksumMismatchError(ModelNotAvailableError):
    """A downloaded file does not have the published SHA-256 (it was deleted again)."""


class UnknownModelError(ValueError):
    """A name that is neither a registered model nor an existing file."""


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    url: str | None  # None: no direct link (manual download from ``ModelSpec.page``)
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    resolution: int
    classes: int | None  # c_dim; 0 = unconditional, None = not known before loading
    dataset: str
    files: tuple[RemoteFile, ...]  # the first one is what the loader opens
    page: str  # where the release is documented
    embedded: bool = False
    notes: str = ""

    @property
    def verified(self) -> bool:
        """True only when every file has a published SHA-256 that downloads are checked against."""
        return bool(self.files) and all(f.sha256 for f in self.files)

    @property
    def manual(self) -> bool:
        return any(f.url is None for f in self.files)


_XL = "https://s3.eu-central-1.amazonaws.com/avg-projects/stylegan_xl/models/"
_XL_PAGE = "https://github.com/autonomousvision/stylegan_xl#pretrained-models"
_ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
_ADA_PAGE = "https://github.com/NVlabs/stylegan2-ada-pytorch#pretrained-networks"
_NGC_SG3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
_NGC_SG2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
_SG3_PAGE = "https://github.com/NVlabs/stylegan3#additional-material"
_DGP_PAGE = "https://github.com/XingangPan/deep-generative-prior (README: pretrained BigGAN, Google Drive)"


def _single(name: str, family: str, resolution: int, classes: int | None, dataset: str, url: str,
            page: str, notes: str = "") -> ModelSpec:
    return ModelSpec(name, family, resolution, classes, dataset,
                     (RemoteFile(url.rsplit("/", 1)[-1], url),), page, notes=notes)


def _build_registry() -> dict[str, ModelSpec]:
    specs: list[ModelSpec] = [
        ModelSpec(DEFAULT_MODEL, "stylegan2", 32, 9, "emoji (Noto/Twemoji/Fluent)",
                  (RemoteFile(EMBEDDED_FILE, None),), "built into ganprior", embedded=True,
                  notes="embedded default prior"),
        ModelSpec("faces32", "stylegan2", 32, 2, "cartoon faces (DiceBear avataaars / facesjs)",
                  (RemoteFile(EMBEDDED_FILE, None),), "built into ganprior", embedded=True,
                  notes="embedded aligned-faces prior, early in training (docs/training/faces.md)"),
    ]
    for r in (16, 32, 64, 128, 256, 512, 1024):
        specs.append(_single(f"stylegan_xl-imagenet{r}", "stylegan_xl", r, 1000, "ImageNet",
                             f"{_XL}imagenet{r}.pkl", _XL_PAGE))
    specs.append(_single("stylegan_xl-cifar10", "stylegan_xl", 32, 10, "CIFAR-10", f"{_XL}cifar10.pkl", _XL_PAGE))
    for stem, dataset in (("ffhq", "FFHQ"), ("pokemon", "Pokemon")):
        for r in (256, 512, 1024):
            specs.append(_single(f"stylegan_xl-{stem}{r}", "stylegan_xl", r, 0, dataset,
                                 f"{_XL}{stem}{r}.pkl", _XL_PAGE))
    for stem, r, c, dataset in (("ffhq", 1024, 0, "FFHQ"), ("metfaces", 1024, 0, "MetFaces"),
                                ("afhqcat", 512, 0, "AFHQ cat"), ("afhqdog", 512, 0, "AFHQ dog"),
                                ("afhqwild", 512, 0, "AFHQ wild"), ("brecahad", 512, 0, "BreCaHAD"),
                                ("cifar10", 32, 10, "CIFAR-10")):
        specs.append(_single(f"stylegan2-ada-{stem}", "stylegan2", r, c, dataset, f"{_ADA}{stem}.pkl", _ADA_PAGE))
    for stem, r, c in (("ffhq", 1024, 0), ("ffhq", 512, 0), ("ffhq", 256, 0), ("ffhqu", 1024, 0),
                       ("ffhqu", 256, 0), ("metfaces", 1024, 0), ("metfacesu", 1024, 0), ("afhqv2", 512, 0),
                       ("afhqcat", 512, 0), ("afhqdog", 512, 0), ("afhqwild", 512, 0), ("brecahad", 512, 0),
                       ("cifar10", 32, 10), ("celebahq", 256, 0), ("lsundog", 256, 0)):
        specs.append(_single(f"stylegan2-{stem}-{r}x{r}", "stylegan2", r, c, stem,
                             f"{_NGC_SG2}stylegan2-{stem}-{r}x{r}.pkl", _SG3_PAGE))
    for cfg in ("t", "r"):
        for stem, r in (("ffhq", 1024), ("ffhqu", 1024), ("ffhqu", 256), ("metfaces", 1024),
                        ("metfacesu", 1024), ("afhqv2", 512)):
            specs.append(_single(f"stylegan3-{cfg}-{stem}-{r}x{r}", "stylegan3", r, 0, stem,
                                 f"{_NGC_SG3}stylegan3-{cfg}-{stem}-{r}x{r}.pkl", _SG3_PAGE,
                                 notes=f"StyleGAN3-{cfg.upper()}"))
    for name, suffix, r, note in (("biggan-dgp-128", "128", 128, "G_ch 96"), ("biggan-dgp-256", "256", 256, "G_ch 96"),
                                  ("biggan-dgp-ch64-256", "ch64_256", 256, "G_ch 64 (used for morphing)")):
        specs.append(ModelSpec(name, "biggan", r, 1000, "ImageNet",
                               (RemoteFile(f"G_ema_{suffix}.pth", None), RemoteFile(f"D_{suffix}.pth", None)),
                               _DGP_PAGE, notes=f"DGP BigGAN, {note}; Google Drive, manual download"))
    return {s.name: s for s in specs}


REGISTRY: dict[str, ModelSpec] = _build_registry()


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Root of the download cache: ``$GANPRIOR_CACHE`` or the user cache directory."""
    return Path(os.environ.get("GANPRIOR_CACHE") or platformdirs.user_cache_dir("ganprior"))


def embedded_dir(name: str = DEFAULT_MODEL) -> Path:
    return Path(str(resources.files("ganprior"))) / "assets" / name


def model_dir(spec: ModelSpec) -> Path:
    return embedded_dir(spec.name) if spec.embedded else cache_dir() / spec.name


def local_files(spec: ModelSpec) -> list[Path]:
    """Where each file of ``spec`` lives (or must be put) on this machine."""
    return [model_dir(spec) / f.filename for f in spec.files]


def is_cached(spec: ModelSpec) -> bool:
    return all(p.is_file() for p in local_files(spec))


def offline() -> bool:
    return os.environ.get("GANPRIOR_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


# ----------------------------------------------------------------------------------------------
# Resolution
# ----------------------------------------------------------------------------------------------


def get_spec(name: str) -> ModelSpec:
    """The registered model ``name``; an unknown name lists the closest registered ones."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, REGISTRY, n=5, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}?" if close else "run `ganprior models` for the list"
    raise UnknownModelError(f"unknown model {name!r} (not a registered name and no such file); {hint}")


def _looks_like_path(name: str) -> bool:
    """Registry names have no separators and no checkpoint suffix; anything else means a file."""
    return os.sep in name or "/" in name or name.startswith("~") or \
        Path(name).suffix in (".pkl", ".pth", ".safetensors", ".pt")


def _unavailable(spec: ModelSpec, missing: list[Path], reason: str) -> ModelNotAvailableError:
    if spec.embedded:
        return ModelNotAvailableError(
            f"the embedded default model {spec.name!r} is not built yet: expected {missing[0]} "
            "(built by scripts/build_embedded.py); pass a model name or file instead")
    where = "\n".join(f"  {p}" + (f"   <- {f.url}" if f.url else "")
                      for p, f in zip(local_files(spec), spec.files) if p in missing)
    how = (f"download the file(s) by hand from {spec.page} and put them at the path(s) above" if spec.manual
           else "download the file(s) from the URL above to that path, or retry with network access")
    return ModelNotAvailableError(f"model {spec.name!r} is not available ({reason}). Needed file(s):\n{where}\n{how}.")


def _download(spec: ModelSpec, remote: RemoteFile, target: Path) -> None:
    import pooch  # imported on use: it pulls in requests

    from ganprior.loading.integrity import record

    known_hash = f"sha256:{remote.sha256}" if remote.sha256 else None
    try:
        pooch.retrieve(remote.url, known_hash=known_hash, fname=target.name, path=target.parent, progressbar=True)
        record(target, cache_dir(), f"download {remote.url}")
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise ChecksumMismatchError(f"{remote.url} did not match the published SHA-256 {remote.sha256}; "
                                        f"the download was discarded ({target})") from exc
        raise _unavailable(spec, [target], f"download failed: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - network errors come from requests/urllib3/OS, all mean "not here"
        raise _unavailable(spec, [target], f"download failed: {type(exc).__name__}: {exc}") from exc


def resolve(name_or_path: str | os.PathLike | None = None, weights: str | os.PathLike | None = None) -> Path:
    """The local file for a model name or path, downloading (and verifying) registered models as needed.

    ``weights`` is an explicit local checkpoint for a registered name (e.g. a manually downloaded file);
    it is used as is. Registered names resolve to the first file of the model (for DGP BigGAN the
    ``G_ema_*.pth``, whose ``D_*.pth`` partner sits next to it).
    """
    if weights is not None:
        weights = Path(weights).expanduser()
        if not weights.exists():
            raise FileNotFoundError(f"weights file not found: {weights}")
        if name_or_path is not None and not _looks_like_path(str(name_or_path)):
            get_spec(str(name_or_path))  # still reject unknown names
        return weights
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    path = Path(name).expanduser()
    # A local file is always given as a path (./emoji32, x.pkl, dir/G_ema_128.pth, or a Path object).
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(name):
        if path.exists():
            return path
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    if name not in REGISTRY and path.exists():  # a bare word never silently picks up a file in the cwd
        raise UnknownModelError(f"{name!r} is not a registered model; to load the file of that name, "
                                f"give it as a path: ./{name}")
    spec = get_spec(name)
    targets = local_files(spec)
    missing = [p for p in targets if not p.is_file()]
    if missing and (spec.embedded or spec.manual):
        raise _unavailable(spec, missing, "not downloaded" if spec.manual else "not built")
    if missing and offline():
        raise _unavailable(spec, missing, "offline mode, GANPRIOR_OFFLINE is set")
    for remote, target in zip(spec.files, targets):
        if target in missing:
            _download(spec, remote, target)
    return targets[0]
