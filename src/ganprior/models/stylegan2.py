"""StyleGAN2(-ADA) generator and discriminator in plain PyTorch, numerically matching the official networks.

Module and parameter names follow NVIDIA's ``training/networks.py`` (stylegan2-ada-pytorch) and
``training/networks_stylegan2.py`` (stylegan3 repo), so an official ``state_dict`` loads with
``strict=True``. Differences from the official code, all deliberate:

* float32 only (official ``force_fp32=True`` semantics): no fp16 blocks, no channels-last;
* the modulated-conv formulation is an explicit choice (``fused_modconv``), not tied to train/eval
  mode; the default (non-fused) is the faster one on CPU (about 1.6x at batch 8, equal at batch 1) and
  agrees with the fused one to float rounding (~1e-6 relative);
* ``w_avg`` is updated only when asked (``update_emas=True``, stylegan3-repo semantics), never
  implicitly because a module is in training mode (the ADA repo's behaviour).

The same classes are used to train fresh models: every weight is an ``nn.Parameter`` and every
op is differentiable.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import torch
from torch import nn

from ganprior.loading.safe_pickle import PersistentNode, generator_node, state_dict_of
from ganprior.models.prior import GenerativePrior
from ganprior.ops.bias_act import bias_act, default_gain
from ganprior.ops.conv2d_resample import conv2d_resample
from ganprior.ops.modulated_conv import modulated_conv2d
from ganprior.ops.precision import ieee_float32
from ganprior.ops.upfirdn2d import downsample2d, setup_filter, upsample2d

DEFAULT_RESAMPLE_FILTER = (1.0, 3.0, 3.0, 1.0)
ARCHITECTURES = ("orig", "skip", "resnet")
NOISE_MODES = ("random", "const", "none")


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def channels_per_resolution(resolutions: Sequence[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """StyleGAN's channel schedule: wide at low resolution, ``channel_base / res`` once that is smaller."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def _check_resolution(img_resolution: int) -> int:
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return int(math.log2(img_resolution))


# ---------------------------------------------------------------------------------------------
# Equalized-learning-rate layers
# ---------------------------------------------------------------------------------------------
class FullyConnectedLayer(nn.Module):
    """Dense layer whose weights are stored unit-variance and scaled at run time (equalized LR)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Equalized-LR conv with optional FIR up/down-sampling, bias, activation and clamp."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = default_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


# ---------------------------------------------------------------------------------------------
# Mapping network (also the discriminator's class-embedding network)
# ---------------------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z (+ class embedding) -> w, broadcast to ``num_ws`` copies; keeps the running mean ``w_avg``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.998) -> None:
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if embed_features is None else embed_features
        embed_features = 0 if c_dim == 0 else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.float())
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}], got {None if c is None else tuple(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None or self.num_ws is None:
                raise ValueError("truncation needs a mapping network that tracks w_avg")
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat([self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi),
                               x[:, truncation_cutoff:]], dim=1)
        return x


# ---------------------------------------------------------------------------------------------
# Synthesis network
# ---------------------------------------------------------------------------------------------
class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up-sampling) + per-pixel noise + bias + lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = default_gain(activation)

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = False,
                gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(shape, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated (not demodulated) 1x1 conv to image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = False) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const input | 2x up-conv) + conv, and the image path of the chosen architecture."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip",
                 resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER, conv_clamp: float | None = None,
                 use_noise: bool = True, activation: str = "lrelu") -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        layer_kwargs = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, activation=activation,
                            resample_filter=resample_filter, conv_clamp=conv_clamp)

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "random", fused_modconv: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image, one :class:`SynthesisBlock` per resolution ``b4 ... bR``."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int = 3, channel_base: int = 32768,
                 channel_max: int = 512, architecture: str = "skip",
                 resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER, conv_clamp: float | None = None,
                 use_noise: bool = True, activation: str = "lrelu", fused_modconv: bool = False) -> None:
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.fused_modconv = fused_modconv
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = channels_per_resolution(self.block_resolutions, channel_base, channel_max)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=(res == img_resolution),
                                   architecture=architecture, resample_filter=resample_filter,
                                   conv_clamp=conv_clamp, use_noise=use_noise, activation=activation)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        fused = self.fused_modconv if fused_modconv is None else fused_modconv
        ws = ws.float()
        x = img = None
        w_idx = 0
        with ieee_float32(ws.is_cuda):
            for block in self.blocks():
                block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
                w_idx += block.num_conv
                x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused)
        return img


class Generator(nn.Module):
    """Mapping + synthesis; ``config()`` gives the keyword arguments that rebuild it."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int = 3,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        mapping_kwargs = _resolved_kwargs(MappingNetwork, mapping_kwargs, skip=4)
        synthesis_kwargs = _resolved_kwargs(SynthesisNetwork, synthesis_kwargs, skip=3)
        self._config = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                            img_channels=img_channels, mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def config(self) -> dict:
        return _jsonable(self._config)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False, noise_mode: str = "random",
                fused_modconv: bool | None = None) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)


# ---------------------------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------------------------
class DiscriminatorBlock(nn.Module):
    """Two convs and a 2x down-sampling at one resolution ('orig', 'skip' or 'resnet' image path)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER, conv_clamp: float | None = None) -> None:
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 or tmp_channels ({tmp_channels}), got {in_channels}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the within-group standard deviation of features as extra channels (diversity signal)."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
        """``group_size`` overrides the layer's (1: every image on its own, as in a batch of one)."""
        n, c, h, w = x.shape
        group_size = self.group_size if group_size is None else group_size
        g = min(group_size, n) if group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch-std: batch size {n} is not a multiple of the group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch-std, conv, fc (the "pre-output features"), output (projected on the class map)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def features(self, x: torch.Tensor, img: torch.Tensor | None, mbstd_group_size: int | None = None) -> torch.Tensor:
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x, mbstd_group_size)
        return self.fc(self.conv(x).flatten(1))

    def output(self, features: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        x = self.out(features)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """Image (+ class) -> realness logit ``[N, 1]``; class conditioning by projection onto a mapped class code."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int = 3, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, conv_clamp: float | None = None,
                 cmap_dim: int | None = None, activation: str = "lrelu",
                 resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER, mbstd_group_size: int | None = 4,
                 mbstd_num_channels: int = 1, mapping_kwargs: dict | None = None) -> None:
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = channels_per_resolution(self.block_resolutions + [4], channel_base, channel_max)
        cmap_dim = channels[4] if cmap_dim is None else cmap_dim
        cmap_dim = 0 if c_dim == 0 else cmap_dim
        mapping_kwargs = _resolved_kwargs(MappingNetwork, mapping_kwargs, skip=4, drop=("w_avg_beta",))
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, activation=activation, resample_filter=resample_filter,
                                       **common)
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, activation=activation, **common)
        self._config = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                            architecture=architecture, channel_base=channel_base, channel_max=channel_max,
                            conv_clamp=conv_clamp, cmap_dim=cmap_dim, activation=activation,
                            resample_filter=list(resample_filter), mbstd_group_size=mbstd_group_size,
                            mbstd_num_channels=mbstd_num_channels, mapping_kwargs=mapping_kwargs)

    def config(self) -> dict:
        return _jsonable(self._config)

    def forward_with_features(self, img: torch.Tensor, c: torch.Tensor | None,
                              mbstd_group_size: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the activations after every block (shallow -> deep), then the epilogue's fc output.

        ``mbstd_group_size=1`` scores every image as if alone (feature losses batch several images)."""
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"discriminator input must be [N, {expected[0]}, {expected[1]}, {expected[2]}], "
                             f"got {tuple(img.shape)}")
        img = img.float()
        x = None
        features = []
        with ieee_float32(img.is_cuda):
            for res in self.block_resolutions:
                x, img = getattr(self, f"b{res}")(x, img)
                features.append(x)
            cmap = self.mapping(None, c) if self.c_dim > 0 else None
            h = self.b4.features(x, img, mbstd_group_size)
            features.append(h)
            logits = self.b4.output(h, cmap)
        return logits, features

    def forward(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.forward_with_features(img, c)[0]


# ---------------------------------------------------------------------------------------------
# Config helpers
# ---------------------------------------------------------------------------------------------
def _resolved_kwargs(cls: type, given: dict | None, skip: int, drop: Sequence[str] = ()) -> dict:
    """Constructor defaults of ``cls`` (after its first ``skip`` positional args) overridden by ``given``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1 + skip:]
    out = {p.name: p.default for p in params if p.name not in drop}
    unknown = set(given or {}) - set(out)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} arguments: {sorted(unknown)}")
    out.update(given or {})
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# The prior
# ---------------------------------------------------------------------------------------------
class StyleGAN2Prior(GenerativePrior):
    """A StyleGAN2 generator (``self.G``) and optionally its discriminator (``self.D``).

    ``blocks()`` are the synthesis blocks ``b4 ... bR``; the mapping network is deliberately not a
    block: every method optimises or fine-tunes *given* ws, which the mapping network never sees.
    """

    family = "stylegan2"

    def __init__(self, generator: dict, discriminator: dict | None = None) -> None:
        super().__init__()
        self.G = Generator(**generator)
        self.D = Discriminator(**discriminator) if discriminator is not None else None

    # ----- shapes -----
    @property
    def resolution(self) -> int:
        return self.G.img_resolution

    @property
    def img_channels(self) -> int:
        return self.G.img_channels

    @property
    def z_dim(self) -> int:
        return self.G.z_dim

    @property
    def w_dim(self) -> int:
        return self.G.w_dim

    @property
    def c_dim(self) -> int:
        return self.G.c_dim

    @property
    def num_ws(self) -> int:
        return self.G.num_ws

    # ----- generation -----
    def _class_input(self, c: torch.Tensor | None) -> torch.Tensor | None:
        if self.c_dim == 0:
            return None
        if c is None:
            raise ValueError(f"this stylegan2 model is class-conditional ({self.c_dim} classes): "
                             f"pass c [N, {self.c_dim}]")
        return c

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        return self.G.mapping(z, self._class_input(c), truncation_psi=truncation_psi,
                              truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "const",
                  fused_modconv: bool | None = None) -> torch.Tensor:
        return self.G.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)

    def w_avg(self, c: torch.Tensor | None = None) -> torch.Tensor:
        if not hasattr(self.G.mapping, "w_avg"):
            raise ValueError("this generator does not track w_avg (w_avg_beta=None)")
        n = 1 if c is None else c.shape[0]
        return self.G.mapping.w_avg.unsqueeze(0).repeat(n, 1)  # a copy: callers may optimise it in place

    def blocks(self) -> list[nn.Module]:
        return list(self.G.synthesis.blocks())

    # ----- discriminator -----
    @property
    def has_discriminator(self) -> bool:
        return self.D is not None

    def discriminator_features(self, img: torch.Tensor, c: torch.Tensor | None = None,
                               mbstd_group_size: int | None = None) -> list[torch.Tensor]:
        if self.D is None:
            return super().discriminator_features(img, c)
        return self.D.forward_with_features(img, self._class_input(c), mbstd_group_size)[1]

    def discriminator(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Realness logits ``[N, 1]``."""
        if self.D is None:
            raise NotImplementedError("stylegan2 model was loaded without a discriminator")
        return self.D(img, self._class_input(c))

    # ----- serialisation -----
    def config(self) -> dict:
        return {"family": self.family, "generator": self.G.config(),
                "discriminator": self.D.config() if self.D is not None else None}


def from_config(config: dict, state_dict: dict[str, torch.Tensor]) -> StyleGAN2Prior:
    """Rebuild a prior from ``prior.config()`` and ``prior.state_dict()`` (bit-identical)."""
    if config.get("family") != StyleGAN2Prior.family:
        raise ValueError(f"config is for family {config.get('family')!r}, not 'stylegan2'")
    prior = StyleGAN2Prior(config["generator"], config.get("discriminator"))
    prior.load_state_dict(state_dict, strict=True)
    return prior.eval()


# ---------------------------------------------------------------------------------------------
# Official pickles: hyper-parameters from stored attributes and tensor shapes
# ---------------------------------------------------------------------------------------------
def _schedule_from_channels(channels: dict[int, int], what: str) -> tuple[int, int]:
    """Find (channel_base, channel_max) with ``min(base // res, max) == channels[res]`` for every res."""
    channel_max = max(channels.values())
    lo, hi = 1, None
    for res, ch in channels.items():
        if ch < channel_max:  # base // res == ch exactly
            lo = max(lo, ch * res)
            hi = ch * res + res - 1 if hi is None else min(hi, ch * res + res - 1)
        else:  # base // res >= channel_max
            lo = max(lo, channel_max * res)
    if hi is not None and lo > hi:
        raise ValueError(f"{what} channel counts {channels} do not follow min(channel_base // res, channel_max)")
    return lo, channel_max


def _filter_taps(buffer: torch.Tensor) -> list[float]:
    """1-D taps whose normalized outer product is the stored 2-D resample filter."""
    return [float(v) for v in buffer.float().sum(dim=1)]


def _weight(node: PersistentNode, name: str = "weight") -> torch.Tensor:
    tensor = node.parameters.get(name)
    return tensor if tensor is not None else node.buffers[name]


def _mapping_kwargs(node: PersistentNode, c_dim: int) -> dict:
    num_layers = int(node.attr("num_layers"))
    fc0 = node.child("fc0")
    kwargs = dict(num_layers=num_layers, activation=fc0.attr("activation"), lr_multiplier=float(fc0.attr("bias_gain")))
    if c_dim > 0:
        kwargs["embed_features"] = int(_weight(node.child("embed")).shape[0])
    if num_layers > 1:
        kwargs["layer_features"] = int(_weight(fc0).shape[0])
    return kwargs


def _generator_kwargs(node: PersistentNode) -> dict:
    mapping, synthesis = node.child("mapping"), node.child("synthesis")
    c_dim = int(node.attr("c_dim"))
    resolutions = [int(r) for r in synthesis.attr("block_resolutions")]
    blocks = [synthesis.child(f"b{res}") for res in resolutions]
    channels = {res: int(_weight(b.child("conv1")).shape[0]) for res, b in zip(resolutions, blocks)}
    channel_base, channel_max = _schedule_from_channels(channels, "synthesis")
    layer = blocks[0].child("conv1")
    beta = mapping.attr("w_avg_beta")
    return dict(
        z_dim=int(node.attr("z_dim")), c_dim=c_dim, w_dim=int(node.attr("w_dim")),
        img_resolution=int(node.attr("img_resolution")), img_channels=int(node.attr("img_channels")),
        mapping_kwargs=dict(_mapping_kwargs(mapping, c_dim), w_avg_beta=None if beta is None else float(beta)),
        synthesis_kwargs=dict(
            channel_base=channel_base, channel_max=channel_max, architecture=blocks[0].attr("architecture"),
            resample_filter=_filter_taps(blocks[0].buffers["resample_filter"]),
            conv_clamp=layer.attr("conv_clamp"), use_noise=bool(layer.attr("use_noise")),
            activation=layer.attr("activation"),
        ),
    )


def _discriminator_kwargs(node: PersistentNode) -> dict:
    c_dim = int(node.attr("c_dim"))
    resolutions = [int(r) for r in node.attr("block_resolutions")]
    blocks = [node.child(f"b{res}") for res in resolutions]
    epilogue = node.child("b4")
    channels = {4: int(_weight(epilogue.child("conv")).shape[0])}
    for res, b in zip(resolutions, blocks):
        channels[res] = int(_weight(b.child("conv0")).shape[0])
    channel_base, channel_max = _schedule_from_channels(channels, "discriminator")
    mbstd = epilogue.children.get("mbstd")
    conv0 = blocks[0].child("conv0")
    return dict(
        c_dim=c_dim, img_resolution=int(node.attr("img_resolution")), img_channels=int(node.attr("img_channels")),
        architecture=blocks[0].attr("architecture"), channel_base=channel_base, channel_max=channel_max,
        conv_clamp=conv0.attr("conv_clamp"), cmap_dim=int(epilogue.attr("cmap_dim")),
        activation=conv0.attr("activation"), resample_filter=_filter_taps(blocks[0].buffers["resample_filter"]),
        mbstd_group_size=None if mbstd is None else mbstd.attr("group_size"),
        mbstd_num_channels=0 if mbstd is None else int(mbstd.attr("num_channels")),
        mapping_kwargs=_mapping_kwargs(node.child("mapping"), c_dim) if c_dim > 0 else None,
    )


def _load_exact(module: nn.Module, node: PersistentNode, what: str) -> None:
    try:
        module.load_state_dict(state_dict_of(node), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"official {what} does not match the architecture read from its attributes: {exc}") from exc


def discriminator_from_official(node: PersistentNode) -> Discriminator:
    """The official StyleGAN2 ``Discriminator`` (also what stylegan3-repo pickles carry as ``D``), weights loaded."""
    if not isinstance(node, PersistentNode) or node.class_name != "Discriminator":
        raise ValueError(f"not a StyleGAN2 discriminator: {node!r}")
    discriminator = Discriminator(**_discriminator_kwargs(node))
    _load_exact(discriminator, node, "discriminator")
    return discriminator.eval()


def from_official(data: dict) -> StyleGAN2Prior:
    """Build from :func:`ganprior.loading.safe_pickle.load_official_pickle` output (G_ema, plus D if stored)."""
    g_node = generator_node(data)
    if g_node.class_name != "Generator" or not isinstance(g_node.children.get("synthesis"), PersistentNode) \
            or g_node.child("synthesis").class_name != "SynthesisNetwork" \
            or "b4" not in g_node.child("synthesis").children:
        raise ValueError(f"not a StyleGAN2 generator: {g_node!r}")
    d_node = data.get("D")
    d_node = d_node if isinstance(d_node, PersistentNode) and d_node.class_name == "Discriminator" else None
    prior = StyleGAN2Prior(_generator_kwargs(g_node), _discriminator_kwargs(d_node) if d_node is not None else None)
    _load_exact(prior.G, g_node, "generator")
    if d_node is not None:
        _load_exact(prior.D, d_node, "discriminator")
    return prior.eval()
