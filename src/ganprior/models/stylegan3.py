"""StyleGAN3 generator (configs T and R), numerically identical to the official network in float32.

Spec: ``stylegan_spec.md`` §3 (architecture), §7 (ops). The synthesis network is described by an
explicit list of :class:`LayerSpec` (one per layer, ToRGB last) rather than by the construction
formulas, because checkpoints store every quantity as attributes and StyleGAN-XL's super-resolution
stages produce layer lists no single formula describes. :func:`synthesis_schedule` gives the SG3
formulas (fresh models, tests); loaders read the stored attributes.

Also the home of the pieces StyleGAN-XL shares with StyleGAN3 (its stem *is* this synthesis network):
:class:`FullyConnectedLayer`, :func:`normalize_2nd_moment`, :class:`SynthesisNetwork`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.signal
import scipy.special
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ganprior.loading.safe_pickle import PersistentNode, generator_node, state_dict_of
from ganprior.models import stylegan2
from ganprior.models.prior import GenerativePrior
from ganprior.ops.bias_act import bias_act
from ganprior.ops.filtered_lrelu import filtered_lrelu
from ganprior.ops.precision import ieee_float32
from ganprior.ops.recompute import can_recompute


class IncompatibleNetworkError(ValueError):
    """A checkpoint / config / input that does not fit the network it was given to."""


# ------------------------------------------------------------------------------------------------
# Small shared pieces
# ------------------------------------------------------------------------------------------------


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (how z and class embeddings enter the mapping network)."""
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


def _plain(value: Any) -> Any:
    """NumPy scalars/arrays from a pickle -> JSON-friendly Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def stored_attr(node: PersistentNode, name: str) -> Any:
    """An attribute the official code stored on the node, as a plain Python value (clear error if absent)."""
    if name not in node.state:
        raise IncompatibleNetworkError(f"{node.class_name} node has no stored attribute {name!r}; "
                                       "is this an official StyleGAN3 / StyleGAN-XL pickle?")
    return _plain(node.attr(name))


class FullyConnectedLayer(nn.Module):
    """Equalized-learning-rate linear layer, SG3/XL flavour (stored weight * lr_mul / sqrt(in))."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        weight_init: float = 1.0,
        bias_init: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.lr_multiplier = lr_multiplier
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = nn.Parameter(torch.from_numpy(bias / lr_multiplier))
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    @staticmethod
    def lr_multiplier_of(node: PersistentNode) -> float:
        """The stored ``bias_gain`` is the layer's learning-rate multiplier."""
        return float(stored_attr(node, "bias_gain"))


def truncate(ws: torch.Tensor, center: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """Truncation trick ``center.lerp(ws, psi)`` on ``ws[:, :cutoff]``; ``center`` is [w_dim] or [N, w_dim]."""
    if psi == 1:
        return ws
    cutoff = ws.shape[1] if cutoff is None else cutoff
    center = center.to(ws.dtype)
    center = center.reshape(1, 1, -1) if center.ndim == 1 else center.unsqueeze(1)
    head = center.lerp(ws[:, :cutoff], psi)
    return torch.cat([head, ws[:, cutoff:]], dim=1)


# ------------------------------------------------------------------------------------------------
# Mapping network
# ------------------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z (+ one-hot class through a linear embedding) -> w, broadcast to ``num_ws`` copies."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.lr_multiplier = lr_multiplier
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            self.add_module(f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                            lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def config(self) -> dict:
        return dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                    num_layers=self.num_layers, lr_multiplier=self.lr_multiplier)

    @staticmethod
    def config_from_node(node: PersistentNode) -> dict:
        config = {key: stored_attr(node, key) for key in ("z_dim", "c_dim", "w_dim", "num_ws", "num_layers")}
        return dict(**config, lr_multiplier=FullyConnectedLayer.lr_multiplier_of(node.child("fc0")))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.to(torch.float32)))], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        return truncate(x, self.w_avg, truncation_psi, truncation_cutoff)


# ------------------------------------------------------------------------------------------------
# Synthesis: Fourier-feature input
# ------------------------------------------------------------------------------------------------


class SynthesisInput(nn.Module):
    """Band-limited Fourier features, rotated/translated per sample by an affine map of ws[0]."""

    def __init__(self, w_dim: int, channels: int, size: Sequence[int], sampling_rate: float,
                 bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = [int(s) for s in np.broadcast_to(size, [2])]  # [width, height]
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)

        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # user-specified inverse transform
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def config(self) -> dict:
        return dict(channels=self.channels, size=list(self.size), sampling_rate=self.sampling_rate,
                    bandwidth=self.bandwidth)

    @staticmethod
    def config_from_node(node: PersistentNode) -> dict:
        return dict(channels=stored_attr(node, "channels"), size=stored_attr(node, "size"),
                    sampling_rate=float(stored_attr(node, "sampling_rate")),
                    bandwidth=float(stored_attr(node, "bandwidth")))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        batch = w.shape[0]
        transforms = self.transform.unsqueeze(0)
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0)

        # Learned rotation + translation, normalised by the rotation magnitude.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        # built out of place (not written into an identity) so that vmap can batch per-image weights
        zero, one = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        m_r = torch.stack([t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], 1).reshape(batch, 3, 3)
        m_t = torch.stack([one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], 1).reshape(batch, 3, 3)
        transforms = m_r @ m_t @ transforms

        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # Fade out frequencies the (user) transform pushed beyond the band limit.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size[0] / self.sampling_rate
        theta[1, 1] = 0.5 * self.size[1] / self.sampling_rate
        grids = nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, self.size[1], self.size[0]], align_corners=False)

        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------------------------------
# Synthesis: modulated conv + filtered lrelu layers
# ------------------------------------------------------------------------------------------------


@dataclass
class LayerSpec:
    """Everything one synthesis layer needs; sizes are ``[width, height]``, padding ``[x0, x1, y0, y1]``."""

    name: str
    in_channels: int
    out_channels: int
    in_size: list[int]
    out_size: list[int]
    in_sampling_rate: float
    out_sampling_rate: float
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    is_torgb: bool
    is_critically_sampled: bool
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: list[int]
    conv_clamp: float | None

    def __post_init__(self) -> None:
        self.in_size = [int(s) for s in np.broadcast_to(self.in_size, [2])]
        self.out_size = [int(s) for s in np.broadcast_to(self.out_size, [2])]
        self.padding = [int(p) for p in self.padding]

    @property
    def tmp_sampling_rate(self) -> float:
        return self.in_sampling_rate * self.up_factor

    @classmethod
    def from_node(cls, name: str, node: PersistentNode) -> "LayerSpec":
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
        return cls(name=name, **{key: stored_attr(node, key) for key in fields})

    @classmethod
    def derive(cls, name: str, in_channels: int, out_channels: int, in_size: int, out_size: int,
               in_sampling_rate: float, out_sampling_rate: float, in_cutoff: float, out_cutoff: float,
               in_half_width: float, out_half_width: float, is_torgb: bool, is_critically_sampled: bool,
               conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
               use_radial_filters: bool = False, conv_clamp: float | None = 256) -> "LayerSpec":
        """The official ``SynthesisLayer.__init__`` arithmetic (rates, taps, padding; spec §3.6)."""
        conv_kernel = 1 if is_torgb else conv_kernel
        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        up_factor = int(np.rint(tmp_rate / in_sampling_rate))
        down_factor = int(np.rint(tmp_rate / out_sampling_rate))
        up_taps = filter_size * up_factor if up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * down_factor if down_factor > 1 and not is_torgb else 1
        in_sz, out_sz = np.broadcast_to(in_size, [2]), np.broadcast_to(out_size, [2])
        pad_total = (out_sz - 1) * down_factor + 1 - (in_sz + conv_kernel - 1) * up_factor + up_taps + down_taps - 2
        pad_lo = (pad_total + up_factor) // 2
        pad_hi = pad_total - pad_lo
        return cls(name=name, in_channels=in_channels, out_channels=out_channels, in_size=in_sz.tolist(),
                   out_size=out_sz.tolist(), in_sampling_rate=in_sampling_rate, out_sampling_rate=out_sampling_rate,
                   in_cutoff=in_cutoff, out_cutoff=out_cutoff, in_half_width=in_half_width,
                   out_half_width=out_half_width, conv_kernel=conv_kernel, is_torgb=is_torgb,
                   is_critically_sampled=is_critically_sampled, up_factor=up_factor, down_factor=down_factor,
                   up_taps=up_taps, down_taps=down_taps,
                   down_radial=bool(use_radial_filters and not is_critically_sampled),
                   padding=[int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])], conv_clamp=conv_clamp)


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """Kaiser-windowed low-pass FIR: separable sinc (``firwin``) or radially symmetric jinc; None for 1 tap."""
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f *= np.outer(window, window)
    f /= np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


#: per-image modulated weights (elements, all images) from which backward recomputes them from the
#: styles instead of storing the chain's copies (a 1024-channel 3x3 layer's are 37 MB per image each)
RECOMPUTE_WEIGHT_NUMEL = 2**20


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 0, input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """SG3 modulated conv (spec §3.7): pre-normalised weight and batch-global style RMS, grouped conv."""
    batch = x.shape[0]
    args = (weight, styles, demodulate, input_gain, batch)
    if torch.is_grad_enabled() and batch * weight.numel() >= RECOMPUTE_WEIGHT_NUMEL \
            and can_recompute(weight, styles):
        # keeps the styles only; the conv itself still keeps the final weights it needs for backward
        w = checkpoint(_modulated_weight, *args, use_reentrant=False)
    else:
        w = _modulated_weight(*args)
    x = x.reshape(1, -1, *x.shape[2:])
    x = nn.functional.conv2d(x, w.to(x.dtype), padding=padding, groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


def _modulated_weight(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool,
                      input_gain: torch.Tensor | None, batch: int) -> torch.Tensor:
    """Per-image weights ``[batch * out, in, k, k]`` of :func:`modulated_conv2d`."""
    in_channels, kh, kw = weight.shape[1:]
    w, s = weight, styles
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s.unsqueeze(1).unsqueeze(3).unsqueeze(4)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.unsqueeze(2).unsqueeze(3).unsqueeze(4)
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_channels).unsqueeze(1).unsqueeze(3).unsqueeze(4)
    return w.reshape(-1, in_channels, kh, kw)


class SynthesisLayer(nn.Module):
    """Modulated conv -> bias + filtered leaky ReLU (alias-free resampling); the last one is the ToRGB."""

    def __init__(self, w_dim: int, spec: LayerSpec) -> None:
        super().__init__()
        self.w_dim, self.spec = w_dim, spec
        self.affine = FullyConnectedLayer(w_dim, spec.in_channels, bias_init=1)
        k = spec.conv_kernel
        self.weight = nn.Parameter(torch.randn([spec.out_channels, spec.in_channels, k, k]))
        self.bias = nn.Parameter(torch.zeros([spec.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer("up_filter", design_lowpass_filter(
            spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate))
        self.register_buffer("down_filter", design_lowpass_filter(
            spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, spec.tmp_sampling_rate, radial=spec.down_radial))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        styles = self.affine(w)
        if spec.is_torgb:
            styles = styles * (1 / np.sqrt(spec.in_channels * spec.conv_kernel**2))
        x = modulated_conv2d(x.to(torch.float32), self.weight, styles, demodulate=not spec.is_torgb,
                             padding=spec.conv_kernel - 1, input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(x.dtype), up=spec.up_factor,
                              down=spec.down_factor, padding=spec.padding, gain=1 if spec.is_torgb else np.sqrt(2),
                              slope=1 if spec.is_torgb else 0.2, clamp=spec.conv_clamp)

    def extra_repr(self) -> str:
        s = self.spec
        return (f"{s.in_channels}->{s.out_channels}, {s.in_size[0]}->{s.out_size[0]} px, "
                f"up {s.up_factor} down {s.down_factor}, torgb={s.is_torgb}")


class SynthesisNetwork(nn.Module):
    """ws[0] -> Fourier input; ws[i + 1] -> layer i; output scaled by ``output_scale`` (shared with XL)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, input: dict,
                 layers: list[dict], output_scale: float = 0.25) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.output_scale = output_scale
        self.input = SynthesisInput(w_dim, **input)
        specs = [spec if isinstance(spec, LayerSpec) else LayerSpec(**spec) for spec in layers]
        self.layer_names = [spec.name for spec in specs]
        for spec in specs:
            self.add_module(spec.name, SynthesisLayer(w_dim, spec))
        self.num_ws = len(specs) + 1

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def config(self) -> dict:
        return dict(w_dim=self.w_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
                    input=self.input.config(), layers=[dataclasses.asdict(l.spec) for l in self.layers()],
                    output_scale=self.output_scale)

    @staticmethod
    def config_from_node(node: PersistentNode) -> dict:
        names = stored_attr(node, "layer_names")
        return dict(w_dim=stored_attr(node, "w_dim"), img_resolution=stored_attr(node, "img_resolution"),
                    img_channels=stored_attr(node, "img_channels"),
                    input=SynthesisInput.config_from_node(node.child("input")),
                    layers=[dataclasses.asdict(LayerSpec.from_node(n, node.child(n))) for n in names],
                    output_scale=float(stored_attr(node, "output_scale")))

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise IncompatibleNetworkError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        with ieee_float32(ws.is_cuda):
            ws = ws.to(torch.float32).unbind(dim=1)
            x = self.input(ws[0])
            for layer, w in zip(self.layers(), ws[1:]):
                x = layer(x, w)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)


def layer_schedule(channels: np.ndarray, sizes: np.ndarray, sampling_rates: np.ndarray, cutoffs: np.ndarray,
                   half_widths: np.ndarray, num_critical: int, first_index: int = 0, **layer_kwargs: Any
                   ) -> list[LayerSpec]:
    """Layers i = 0..L from per-entry arrays (entry i is layer i's output, entry i-1 its input)."""
    num_layers = len(channels) - 1
    specs = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        specs.append(LayerSpec.derive(
            name=f"L{idx + first_index}_{int(sizes[idx])}_{int(channels[idx])}",
            in_channels=int(channels[prev]), out_channels=int(channels[idx]),
            in_size=int(sizes[prev]), out_size=int(sizes[idx]),
            in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
            is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical, **layer_kwargs))
    return specs


def synthesis_schedule(
    w_dim: int,
    img_resolution: int,
    img_channels: int = 3,
    channel_base: int = 32768,
    channel_max: int = 512,
    num_layers: int = 14,
    num_critical: int = 2,
    first_cutoff: float = 2,
    first_stopband: float = 2**2.1,
    last_stopband_rel: float = 2**0.3,
    margin_size: int = 10,
    output_scale: float = 0.25,
    **layer_kwargs: Any,
) -> dict:
    """A :class:`SynthesisNetwork` config from the official construction formulas (spec §3.3).

    ``layer_kwargs`` go to :meth:`LayerSpec.derive` (``conv_kernel``, ``use_radial_filters``, ``conv_clamp``,
    ...); StyleGAN3-R is ``conv_kernel=1, use_radial_filters=True`` with doubled channel_base/max.
    """
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    layers = layer_schedule(channels, sizes, sampling_rates, cutoffs, half_widths, num_critical, **layer_kwargs)
    return dict(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                input=dict(channels=int(channels[0]), size=[int(sizes[0])] * 2,
                           sampling_rate=float(sampling_rates[0]), bandwidth=float(cutoffs[0])),
                layers=[dataclasses.asdict(spec) for spec in layers], output_scale=output_scale)


# ------------------------------------------------------------------------------------------------
# Generator and prior adapter
# ------------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """Mapping + synthesis, with the official module names (``synthesis.*``, ``mapping.*``)."""

    mapping_class: type[nn.Module] = MappingNetwork

    def __init__(self, mapping: dict, synthesis: dict) -> None:
        super().__init__()
        self.synthesis = SynthesisNetwork(**synthesis)
        self.mapping = self.mapping_class(**mapping)
        if self.mapping.num_ws != self.synthesis.num_ws:
            raise IncompatibleNetworkError(f"mapping broadcasts to {self.mapping.num_ws} ws but synthesis has "
                                           f"{self.synthesis.num_ws} inputs")

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff))


class AliasFreePrior(GenerativePrior):
    """What StyleGAN3 and StyleGAN-XL priors share: a :class:`Generator` with an SG3 synthesis network."""

    generator_class: type[Generator] = Generator

    def __init__(self, mapping: dict, synthesis: dict) -> None:
        super().__init__()
        self.G = self.generator_class(mapping, synthesis)

    @property
    def resolution(self) -> int:
        return self.G.synthesis.img_resolution

    @property
    def img_channels(self) -> int:
        return self.G.synthesis.img_channels

    @property
    def z_dim(self) -> int:
        return self.G.mapping.z_dim

    @property
    def w_dim(self) -> int:
        return self.G.mapping.w_dim

    @property
    def c_dim(self) -> int:
        return self.G.mapping.c_dim

    @property
    def num_ws(self) -> int:
        return self.G.synthesis.num_ws

    def _check_inputs(self, z: torch.Tensor, c: torch.Tensor | None) -> None:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise IncompatibleNetworkError(f"z must be [N, {self.z_dim}], got {tuple(z.shape)}")
        if self.c_dim > 0 and (c is None or c.ndim != 2 or c.shape != (z.shape[0], self.c_dim)):
            got = None if c is None else tuple(c.shape)
            raise IncompatibleNetworkError(f"this {self.family} model is class-conditional: c must be "
                                           f"[{z.shape[0]}, {self.c_dim}], got {got}")

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        self._check_inputs(z, c)
        return self.G.mapping(z, c, truncation_psi, truncation_cutoff)

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "const") -> torch.Tensor:
        """SG3 has no noise inputs: ``noise_mode`` is accepted for interface compatibility and ignored."""
        return self.G.synthesis(ws)

    def blocks(self) -> list[nn.Module]:
        return [self.G.synthesis.input, *self.G.synthesis.layers()]

    def config(self) -> dict:
        return {"family": self.family, "mapping": self.G.mapping.config(), "synthesis": self.G.synthesis.config()}

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, torch.Tensor]) -> "AliasFreePrior":
        if config.get("family") != cls.family:
            raise IncompatibleNetworkError(f"config is for family {config.get('family')!r}, not {cls.family!r}")
        prior = cls(**{key: value for key, value in config.items() if key != "family"})
        prior.load_state_dict(state_dict, strict=True)
        return prior.eval().requires_grad_(False)

    @classmethod
    def from_generator_node(cls, G: PersistentNode) -> "AliasFreePrior":
        """Hyper-parameters from the stored attributes, weights from the stored tensors (strict)."""
        prior = cls(cls.generator_class.mapping_class.config_from_node(G.child("mapping")),
                    SynthesisNetwork.config_from_node(G.child("synthesis")))
        prior.G.load_state_dict(state_dict_of(G), strict=True)
        return prior.eval().requires_grad_(False)


class StyleGAN3Prior(AliasFreePrior):
    """A StyleGAN3 (T or R) generator, plus the StyleGAN2 discriminator official SG3 pickles carry."""

    family = "stylegan3"

    def __init__(self, mapping: dict, synthesis: dict, discriminator: dict | None = None) -> None:
        super().__init__(mapping, synthesis)
        self.D = stylegan2.Discriminator(**discriminator) if discriminator is not None else None

    def w_avg(self, c: torch.Tensor | None = None) -> torch.Tensor:
        n = 1 if c is None else c.shape[0]
        return self.G.mapping.w_avg.unsqueeze(0).expand(n, -1)

    @property
    def has_discriminator(self) -> bool:
        return self.D is not None

    def discriminator(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Realness logits ``[N, 1]``."""
        if self.D is None:
            raise NotImplementedError("stylegan3 model was loaded without a discriminator")
        return self.D(img, c if self.c_dim else None)

    def discriminator_features(self, img: torch.Tensor, c: torch.Tensor | None = None,
                               mbstd_group_size: int | None = None) -> list[torch.Tensor]:
        if self.D is None:
            return super().discriminator_features(img, c)
        return self.D.forward_with_features(img, c if self.c_dim else None, mbstd_group_size)[1]

    def config(self) -> dict:
        return {**super().config(), "discriminator": self.D.config() if self.D is not None else None}


def from_config(config: dict, state_dict: dict[str, torch.Tensor]) -> StyleGAN3Prior:
    """Rebuild a prior saved as ``config()`` + ``state_dict()`` (our safetensors + JSON format)."""
    return StyleGAN3Prior.from_config(config, state_dict)


def from_official(data: dict) -> StyleGAN3Prior:
    """Build from :func:`~ganprior.loading.safe_pickle.load_official_pickle` output: ``G_ema``, and ``D``
    (an official StyleGAN2 discriminator, ``models.stylegan2``) when the pickle stores one."""
    G = generator_node(data)
    mapping, synthesis = G.children.get("mapping"), G.children.get("synthesis")
    if not isinstance(mapping, PersistentNode) or not isinstance(synthesis, PersistentNode) \
            or "input" not in synthesis.children:
        raise IncompatibleNetworkError(f"{G.class_name} is not a StyleGAN3 generator (no synthesis.input layer)")
    if "embed_proj" in mapping.children or "head_layer_names" in G.state:
        raise IncompatibleNetworkError("this is a StyleGAN-XL generator; load it with ganprior.models.stylegan_xl")
    prior = StyleGAN3Prior.from_generator_node(G)
    d_node = data.get("D")
    if isinstance(d_node, PersistentNode) and d_node.class_name == "Discriminator":
        prior.D = stylegan2.discriminator_from_official(d_node).requires_grad_(False)
    return prior
