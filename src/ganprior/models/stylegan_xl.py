"""StyleGAN-XL generator (stem and super-resolution stages), numerically identical to the official one.

Spec: ``stylegan_spec.md`` §4. XL = StyleGAN3 synthesis + a class-conditional mapping network that
looks the class up in a pretrained embedding table (``embed``, 320-d rows), projects it to z_dim
(``embed_proj``) and keeps one truncation centre per class (``w_avg`` is ``[c_dim, w_dim]``).
Super-resolution stages drop the stem's critically sampled layers and append new head layers, so
layer names are not contiguous (e.g. L0–L11 then L13–L20); the stored ``layer_names`` order is used.
No discriminator: the official projected discriminator needs timm backbones downloaded at build time.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ganprior.loading.safe_pickle import PersistentNode, generator_node
from ganprior.models import stylegan3
from ganprior.models.stylegan3 import (
    AliasFreePrior,
    FullyConnectedLayer,
    IncompatibleNetworkError,
    LayerSpec,
    layer_schedule,
    normalize_2nd_moment,
    stored_attr,
    truncate,
)


class MappingNetwork(nn.Module):
    """z ⊕ projected class embedding -> w; truncation towards the class's own ``w_avg`` row."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, embed_classes: int = 1000, embed_dim: int = 320) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.lr_multiplier, self.embed_classes, self.embed_dim = lr_multiplier, embed_classes, embed_dim
        if c_dim > 0 and embed_classes < c_dim:
            raise IncompatibleNetworkError(f"{c_dim} classes but only {embed_classes} class-embedding rows")
        # The official mapping always carries the table (unused when unconditional).
        self.embed = nn.Embedding(embed_classes, embed_dim) if embed_classes else None
        self.embed_proj = FullyConnectedLayer(embed_dim, z_dim, activation="lrelu") if c_dim > 0 else None
        features = [z_dim + (z_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            self.add_module(f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                            lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([c_dim, w_dim] if c_dim > 0 else [w_dim]))

    def config(self) -> dict:
        return dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                    num_layers=self.num_layers, lr_multiplier=self.lr_multiplier,
                    embed_classes=self.embed_classes, embed_dim=self.embed_dim)

    @staticmethod
    def config_from_node(node: PersistentNode) -> dict:
        embed = node.children.get("embed")
        table = embed.parameters.get("weight") if embed is not None else None
        config = {key: stored_attr(node, key) for key in ("z_dim", "c_dim", "w_dim", "num_ws", "num_layers")}
        return dict(**config, lr_multiplier=FullyConnectedLayer.lr_multiplier_of(node.child("fc0")),
                    embed_classes=0 if table is None else int(table.shape[0]),
                    embed_dim=0 if table is None else int(table.shape[1]))

    def class_centers(self, c: torch.Tensor | None) -> torch.Tensor:
        """Truncation centre per sample: ``w_avg[argmax(c)]`` (conditional) or the single ``w_avg``."""
        if self.c_dim == 0:
            return self.w_avg
        return self.w_avg[c.argmax(1)]

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:  # c is read as one-hot: soft labels collapse to their argmax
            y = normalize_2nd_moment(self.embed_proj(self.embed(c.argmax(1))))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        return truncate(x, self.class_centers(c), truncation_psi, truncation_cutoff)


class Generator(stylegan3.Generator):
    mapping_class = MappingNetwork


class StyleGANXLPrior(AliasFreePrior):
    """A StyleGAN-XL generator (any stage) behind the :class:`GenerativePrior` interface."""

    family = "stylegan_xl"
    generator_class = Generator

    def w_avg(self, c: torch.Tensor | None = None) -> torch.Tensor:
        """Per-class truncation centres ``[N, w_dim]`` (the single centre for unconditional models)."""
        if self.c_dim == 0:
            return self.G.mapping.w_avg.unsqueeze(0).expand(1 if c is None else c.shape[0], -1)
        if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
            raise IncompatibleNetworkError(f"class-conditional XL: w_avg needs c of shape [N, {self.c_dim}], "
                                           f"got {None if c is None else tuple(c.shape)}")
        return self.G.mapping.class_centers(c)

    def multimodal_centers(self, w: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        """Multimodal truncation (§4.7): the centroid ``[K, w_dim]`` nearest to each ``w[:, 0]``."""
        centroids = centroids.to(w.device, w.dtype)
        dist = torch.cdist(w[:, 0], centroids)
        return centroids[dist.argmin(1)]

    @torch.no_grad()
    def ws_from_seed(
        self,
        seed: int,
        n: int = 1,
        class_idx: int | None = None,
        truncation_psi: float = 1.0,
        centroids: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """The official XL sampling path (``gen_utils.get_w_from_seed``): NumPy-seeded z and classes,
        untruncated mapping, then ``w_avg + (w - w_avg) * psi`` on every ws row, where ``w_avg`` is the
        class centre, or the nearest of ``centroids`` (multimodal truncation, class ignored)."""
        classes = None
        if self.c_dim > 0:
            classes = np.random.RandomState(seed).randint(0, self.c_dim, size=n) if class_idx is None \
                else np.full(n, class_idx)
        c = self.class_matrix(None if classes is None else torch.from_numpy(classes), n)
        z = torch.from_numpy(np.random.RandomState(seed).randn(n, self.z_dim)).to(self.device)
        w = self.G.mapping(z, c)
        center = self.w_avg(c)
        if centroids is not None:
            center = self.multimodal_centers(w, torch.as_tensor(centroids))
        center = center.unsqueeze(1).repeat(1, self.num_ws, 1)
        return center + (w - center) * truncation_psi


def superres_schedule(
    stem: dict,
    head_layers: int = 7,
    up_factor: int = 2,
    channel_base: int = 65536,
    channel_max: int = 1024,
    margin_size: int = 10,
    last_stopband_rel: float = 2**0.3,
    conv_kernel: int = 3,
    use_radial_filters: bool = False,
) -> dict:
    """The synthesis config of the next super-resolution stage (official ``SuperresGenerator``, §4.5).

    ``stem`` is the previous stage's synthesis config: its critically sampled layers (and ToRGB) are
    dropped and ``head_layers + 1`` layers are appended, named from ``L{len(kept) + 1}``. Head layers
    always use the official defaults (conv_clamp 256, filter_size 6, lrelu_upsampling 2, 2 critical).
    """
    stem_layers = [spec if isinstance(spec, LayerSpec) else LayerSpec(**spec) for spec in stem["layers"]]
    kept = [spec for spec in stem_layers if not spec.is_critically_sampled]
    last = kept[-1]
    resolution = stem["img_resolution"] * up_factor
    num_critical = 2

    first_cutoff, first_stopband = last.out_cutoff, last.out_half_width + last.out_cutoff
    last_cutoff = resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(head_layers + 1) / (head_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    sampling_rates[0] = last.out_sampling_rate
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[0] = last.out_channels
    channels[-1] = stem["img_channels"]

    heads = layer_schedule(channels, sizes, sampling_rates, cutoffs, half_widths, num_critical,
                           first_index=len(kept) + 1, conv_kernel=conv_kernel, use_radial_filters=use_radial_filters)
    return {**stem, "img_resolution": resolution,
            "layers": [dataclasses.asdict(spec) for spec in kept + heads]}


def num_ws_per_resolution(
    resolutions: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024),
    stem_layers: int = 10,
    head_layers: int = 7,
    channel_base: int = 65536,
    channel_max: int = 1024,
) -> dict[int, int]:
    """num_ws of an XL family grown stage by stage (×2 per stage) from a stem at ``resolutions[0]``.

    Defaults are the ImageNet README settings (stem ``--syn_layers 10``, ``--head_layers 7``).
    """
    config = stylegan3.synthesis_schedule(512, resolutions[0], channel_base=channel_base, channel_max=channel_max,
                                          num_layers=stem_layers)
    result = {resolutions[0]: len(config["layers"]) + 1}
    for resolution in resolutions[1:]:
        config = superres_schedule(config, head_layers, resolution // config["img_resolution"],
                                   channel_base=channel_base, channel_max=channel_max)
        result[resolution] = len(config["layers"]) + 1
    return result


def from_config(config: dict, state_dict: dict[str, torch.Tensor]) -> StyleGANXLPrior:
    """Rebuild a prior saved as ``config()`` + ``state_dict()`` (our safetensors + JSON format)."""
    return StyleGANXLPrior.from_config(config, state_dict)


def from_official(data: dict) -> StyleGANXLPrior:
    """Build from :func:`~ganprior.loading.safe_pickle.load_official_pickle` output (uses ``G_ema``).

    Works for stems (``Generator``) and every super-resolution stage (``SuperresGenerator``); all
    hyper-parameters come from stored attributes (the stored ``_init_kwargs`` of XL are stale).
    """
    G = generator_node(data)
    mapping, synthesis = G.children.get("mapping"), G.children.get("synthesis")
    if not isinstance(mapping, PersistentNode) or not isinstance(synthesis, PersistentNode) \
            or "input" not in synthesis.children:
        raise IncompatibleNetworkError(f"{G.class_name} is not a StyleGAN-XL generator (no synthesis.input layer)")
    if "embed" not in mapping.children:
        raise IncompatibleNetworkError("this generator has no class-embedding table: it is a plain StyleGAN3 "
                                       "network; load it with ganprior.models.stylegan3")
    return StyleGANXLPrior.from_generator_node(G)
