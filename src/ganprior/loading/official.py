"""Official checkpoints -> :class:`GenerativePrior`, without running anything stored in them.

* StyleGAN2-ADA / StyleGAN3 / StyleGAN-XL network pickles: parsed by
  :func:`ganprior.loading.safe_pickle.load_official_pickle`, the family is detected from the stored
  class names and attributes (never from ``module_src``), then ``models.<family>.from_official(data)``.
* DGP BigGAN: a pair of plain state dicts ``G_ema_<suffix>.pth`` + ``D_<suffix>.pth`` read with
  ``torch.load(weights_only=True)`` and handed to ``models.biggan.load_biggan``.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ganprior.loading.errors import (
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    UnsupportedCheckpointError,
)
from ganprior.loading.guards import build_network, open_regular, validate_config
from ganprior.loading.native import family_module
from ganprior.loading.tensor_records import read_zip_state_dict
from ganprior.loading.torch_files import scan_torch_file
from ganprior.loading.safe_pickle import PersistentNode, generator_node, iter_state, load_official_pickle
from ganprior.models.prior import GenerativePrior


@dataclass(frozen=True)
class OfficialKind:
    """What an official pickle holds: the model family and the code base that wrote it."""

    family: str  # "stylegan2" | "stylegan3" | "stylegan_xl"
    variant: str  # "stylegan2-ada" | "stylegan3-repo" | "stylegan3-t" | "stylegan3-r" | "xl-stem" | "xl-superres"


def detect_family(data: dict) -> OfficialKind:
    """Family from the generator tree (spec §1.5.5): SG2 has ``b4, b8, ...`` blocks, SG3 an ``input`` layer
    plus ``layer_names``, XL additionally a class ``embed``/``embed_proj`` or the ``SuperresGenerator`` class."""
    G = generator_node(data)
    synthesis, mapping = G.children.get("synthesis"), G.children.get("mapping")
    if not isinstance(synthesis, PersistentNode) or not isinstance(mapping, PersistentNode):
        raise UnsupportedCheckpointError(f"generator {G.class_name!r} has no mapping/synthesis networks "
                                         f"(children: {list(G.children)})")
    if G.class_name == "SuperresGenerator" or "head_layer_names" in G.state:
        return OfficialKind("stylegan_xl", "xl-superres")
    if "input" in synthesis.children and "layer_names" in synthesis.state:
        if "embed" in mapping.children and "embed_proj" in mapping.children:
            return OfficialKind("stylegan_xl", "xl-stem")
        first_layer = synthesis.children.get(synthesis.attr("layer_names")[0])
        rotation_equivariant = isinstance(first_layer, PersistentNode) and first_layer.attr("conv_kernel") == 1
        return OfficialKind("stylegan3", "stylegan3-r" if rotation_equivariant else "stylegan3-t")
    if "b4" in synthesis.children:
        b4 = synthesis.child("b4")
        variant = "stylegan3-repo" if "fused_modconv_default" in b4.state else "stylegan2-ada"
        return OfficialKind("stylegan2", variant)
    raise UnsupportedCheckpointError(f"unrecognised generator architecture: synthesis children "
                                     f"{list(synthesis.children)[:6]}, class {G.class_name!r}")


# ----------------------------------------------------------------------------------------------
# BigGAN (DGP) state-dict pairs
# ----------------------------------------------------------------------------------------------

_BIGGAN_G = re.compile(r"^G(?:_ema)?_(?P<suffix>.+)\.pth$")


def biggan_pair(path: str | Path) -> tuple[Path, Path | None]:
    """``(G_ema_<s>.pth, D_<s>.pth or None)`` from a G file or a directory holding the pair (DGP naming)."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("G_ema_*.pth")) or sorted(path.glob("G_*.pth"))
        if len(candidates) != 1:
            raise UnsupportedCheckpointError(f"{path} must hold exactly one G_ema_<suffix>.pth (DGP naming); "
                                             f"found {[c.name for c in candidates]}")
        path = candidates[0]
    match = _BIGGAN_G.match(path.name)
    if not match:
        raise UnsupportedCheckpointError(f"{path.name}: BigGAN generators must be named G_ema_<suffix>.pth "
                                         "(DGP/BigGAN-PyTorch naming), with D_<suffix>.pth next to them")
    d_path = path.with_name(f"D_{match['suffix']}.pth")
    return path, (d_path if d_path.exists() else None)


def _weights_only_reason(exc: Exception) -> tuple[bool, str]:
    """(hostile?, the informative line) of torch's weights_only refusal, without its "retry unsafely" advice."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "GLOBAL" in line:
            return True, line
    detail = next((ln for ln in lines[1:] if not ln.startswith(("Please file", "Check the documentation"))), lines[0])
    return False, detail


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state dict, pre-scanned, then read by an allow-list unpickler (zip files) or by
    ``torch.load(weights_only=True)`` (legacy layout); no code can run either way."""
    path = Path(path)
    with open_regular(path) as fh:
        head = fh.read(2)
        if head != b"PK" and head[:1] != b"\x80":
            raise CorruptCheckpointError(f"{path} is not a torch.save file (empty, truncated or bad header {head!r})")
        size = os.fstat(fh.fileno()).st_size
        scan_torch_file(fh, size, str(path))  # weights_only does not stop deep nesting, memo or size bombs
        try:
            data = read_zip_state_dict(fh, str(path)) if head == b"PK" else None
            if data is None:  # legacy layout, or big-endian data
                fh.seek(0)
                data = torch.load(fh, map_location="cpu", weights_only=True)
        except CheckpointError:
            raise
        except pickle.UnpicklingError as exc:
            hostile, reason = _weights_only_reason(exc)
            if hostile:
                raise UnsafeCheckpointError(f"{path} references code, not just tensors; "
                                            f"refusing to load it ({reason})") from exc
            raise CorruptCheckpointError(f"{path} is truncated or corrupt: {reason}") from exc
        except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError, IndexError,
                MemoryError, RecursionError, OverflowError, ZeroDivisionError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise CorruptCheckpointError(f"{path} is truncated or corrupt: {type(exc).__name__}: {first}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CorruptCheckpointError(f"{path} is not a state dict (a dict of tensors)")
    return data


def load_biggan_pair(path: str | Path) -> GenerativePrior:
    """DGP BigGAN from ``G_ema_<s>.pth`` (+ ``D_<s>.pth`` when present, for the feature loss)."""
    g_path, d_path = biggan_pair(path)
    g_state = read_state_dict(g_path)
    d_state = read_state_dict(d_path) if d_path is not None else None
    carried = sum(t.numel() for t in g_state.values()) + sum(t.numel() for t in (d_state or {}).values())
    module = family_module("biggan")
    return build_network(lambda: module.load_biggan(g_state, d_state), carried, str(g_path))


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def is_biggan_path(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix == ".pth" or (path.is_dir() and any(path.glob("G*_*.pth")))


def load_official(path: str | Path, device: str | torch.device = "cpu") -> GenerativePrior:
    """Load an official checkpoint (network pickle, or DGP BigGAN ``.pth`` pair / directory), eval mode, float32."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if is_biggan_path(path):
        prior = load_biggan_pair(path)
    else:
        data = load_official_pickle(path)
        kind = build_network(lambda: detect_family(data), 0, str(path))
        module = family_module(kind.family)
        carried = sum(t.numel() for key in ("G_ema", "G", "D") if isinstance(data.get(key), PersistentNode)
                      for _, t in iter_state(data[key]) if isinstance(t, torch.Tensor))
        prior = build_network(lambda: module.from_official(data), carried, str(path))
    validate_config(prior.config(), str(path), "stored attribute")
    return prior.float().to(device).eval()
