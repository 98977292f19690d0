"""BigGAN generator and discriminator in the BigGAN-PyTorch layout as DGP uses it, plus the prior wrapper.

Parity target: DGP's ``models/biggan.py`` + ``models/layers.py`` (reference: ``dgp_spec.md`` §1.4, §1.6, §5).
Module and buffer names are DGP's, so ``Generator(cfg).load_state_dict(torch.load("G_ema_128.pth"))`` works
key for key. Behaviour that matters for parity:

* spectral norm runs one power iteration per forward even in eval mode, from the stored ``u0``,
  without writing it back (``ganprior.ops.spectral_norm``);
* in eval mode the class-conditional BNs normalise with the stored running statistics;
* the hierarchical latent is split into ``num_blocks + 1`` chunks: chunk 0 feeds ``G.linear``, chunk
  ``i`` is appended *after* the class embedding for block ``i - 1`` (``cond = [embedding, z_i]``);
* DGP's BN->IN swap (``GBlock.in1``/``in2``, frozen affine, lazily initialised from the BN output with
  an *unbiased* std) is reproduced, including its side effect that the class embedding and z chunks
  1.. then stop influencing the image;
* the discriminator returns DGP's feature list. DGP's ``D_activation`` is an in-place ReLU, and the global
  pooling applies it to the last block's output *while that tensor is already in the feature list*, so
  DGP's loss sees ``ReLU(last block)``. :meth:`Discriminator.forward` returns that by default
  (``relu_last_feature=True``) because DGP's feature-matching loss, latent selection and published
  numbers are all computed with it; ``relu_last_feature=False`` gives the pre-ReLU tensor.

The arithmetic is reorganised for CPU speed (fused attention, upsampling/pooling folded into conv kernels,
BN folded into one affine map, eval-mode spectral-norm weights cached, sigma's gradient taken analytically
when G is tuned, im2col for the widest few-pixel convs): equal to the official op order up
to float rounding (``tests/test_biggan.py``; measured against the official code by ``bench/biggan_speed.py``).

Things this file deliberately does not reproduce: weight initialisation schemes (weights always come
from a checkpoint; DGP's ``--random_G`` is out of scope), ``mybn``/cross-replica BN, non-shared class
embeddings and non-SN layers (no released DGP/BigGAN-PyTorch checkpoint uses them; configs asking for
them are rejected by :func:`config_from_dgp_args`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganprior.models.prior import GenerativePrior
from ganprior.ops.precision import ieee_float32
from ganprior.ops.spectral_norm import SNConv2d, SNEmbedding, SNLinear

BOTTOM_WIDTH = 4  # spatial size of G's first feature map (DGP never changes it)
OUTPUT_BN_EPS = 1e-5  # the output-layer BN ignores BN_eps in the official code


class CheckpointMismatchError(ValueError):
    """A BigGAN state dict that does not fit the requested (or inferred) architecture."""


# ----------------------------------------------------------------------------------------------
# Architecture tables (BigGAN-PyTorch ``G_arch``/``D_arch``; channel multipliers of ``ch``)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arch:
    in_mult: tuple[int, ...]
    out_mult: tuple[int, ...]
    #: resolution label per block; attention strings refer to these labels (official D at 32 px
    #: labels every block 16, so "16" puts attention after all four blocks there)
    labels: tuple[int, ...]
    downsample: tuple[bool, ...] = ()


_G_ARCH = {
    512: _Arch((16, 16, 8, 8, 4, 2, 1), (16, 8, 8, 4, 2, 1, 1), (8, 16, 32, 64, 128, 256, 512)),
    256: _Arch((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1), (8, 16, 32, 64, 128, 256)),
    128: _Arch((16, 16, 8, 4, 2), (16, 8, 4, 2, 1), (8, 16, 32, 64, 128)),
    64: _Arch((16, 16, 8, 4), (16, 8, 4, 2), (8, 16, 32, 64)),
    32: _Arch((4, 4, 4), (4, 4, 4), (8, 16, 32)),
}
# in_mult entry 0 is the RGB input (3 channels, not a multiple of ch): stored as 0 here.
_D_ARCH = {
    256: _Arch((0, 1, 2, 4, 8, 8, 16), (1, 2, 4, 8, 8, 16, 16), (128, 64, 32, 16, 8, 4, 4), (True,) * 6 + (False,)),
    128: _Arch((0, 1, 2, 4, 8, 16), (1, 2, 4, 8, 16, 16), (64, 32, 16, 8, 4, 4), (True,) * 5 + (False,)),
    64: _Arch((0, 1, 2, 4, 8), (1, 2, 4, 8, 16), (32, 16, 8, 4, 4), (True,) * 4 + (False,)),
    32: _Arch((0, 4, 4, 4), (4, 4, 4, 4), (16, 16, 16, 16), (True, True, False, False)),
}


def _attention_labels(spec: str) -> frozenset[int]:
    """``"64"`` / ``"32_64"`` -> {64} / {32, 64}; ``"0"`` or ``""`` -> no attention."""
    try:
        return frozenset(int(tok) for tok in spec.split("_") if tok and int(tok) != 0)
    except ValueError:
        raise ValueError(f"attention spec {spec!r} must be resolutions joined by '_', e.g. '64' or '32_64'") from None


def _attention_spec(labels: set[int] | frozenset[int]) -> str:
    return "_".join(str(r) for r in sorted(labels)) or "0"


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BigGANConfig:
    """Architecture hyper-parameters, under DGP's command-line names.

    ``dim_z`` is the requested latent size; with ``hier`` the generator uses
    ``dim_z // (num_blocks + 1) * (num_blocks + 1)`` (120 -> 119 at 256 px, as DGP notes).
    ``BN_eps``/``SN_eps``/``num_*_SV_itrs`` cannot be read from tensor shapes.
    """

    resolution: int = 128
    G_ch: int = 96
    D_ch: int = 96
    dim_z: int = 120
    shared_dim: int = 128
    n_classes: int = 1000
    hier: bool = True
    G_attn: str = "64"
    D_attn: str = "64"
    D_wide: bool = True
    BN_eps: float = 1e-5
    SN_eps: float = 1e-6
    num_G_SVs: int = 1
    num_G_SV_itrs: int = 1
    num_D_SVs: int = 1
    num_D_SV_itrs: int = 1

    def __post_init__(self) -> None:
        if self.resolution not in _G_ARCH:
            raise ValueError(f"BigGAN resolution must be one of {sorted(_G_ARCH)}, got {self.resolution}")
        for name in ("G_ch", "D_ch", "dim_z", "shared_dim", "n_classes",
                     "num_G_SVs", "num_G_SV_itrs", "num_D_SVs", "num_D_SV_itrs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BigGAN config {name} must be a positive integer, got {value!r}")
        if self.hier and self.dim_z < self.num_slots:
            raise ValueError(f"hierarchical z needs dim_z >= {self.num_slots} (one entry per slot), got {self.dim_z}")
        bad = _attention_labels(self.G_attn) - set(_G_ARCH[self.resolution].labels)
        if bad:
            raise ValueError(f"G_attn {self.G_attn!r}: no generator block at resolution {sorted(bad)} "
                             f"(blocks at {list(_G_ARCH[self.resolution].labels)})")
        if self.resolution in _D_ARCH:
            bad = _attention_labels(self.D_attn) - set(_D_ARCH[self.resolution].labels)
            if bad:
                raise ValueError(f"D_attn {self.D_attn!r}: no discriminator block labelled {sorted(bad)} "
                                 f"(labels {list(_D_ARCH[self.resolution].labels)})")

    @property
    def num_blocks(self) -> int:
        return len(_G_ARCH[self.resolution].in_mult)

    @property
    def num_slots(self) -> int:
        return self.num_blocks + 1 if self.hier else 1

    @property
    def z_chunk_size(self) -> int:
        return self.dim_z // self.num_slots if self.hier else 0

    @property
    def effective_dim_z(self) -> int:
        return self.z_chunk_size * self.num_slots if self.hier else self.dim_z

    @classmethod
    def from_dict(cls, values: Mapping) -> BigGANConfig:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown BigGAN config keys {sorted(unknown)}; known: "
                             f"{[f.name for f in dataclasses.fields(cls)]} "
                             "(for a DGP argument dict use config_from_dgp_args)")
        return cls(**values)


#: Released checkpoints in this layout. DGP's own (Google Drive, named ``G_ema_<key>.pth`` / ``D_<key>.pth``)
#: come first; the BigGAN-PyTorch TFHub conversions (generator only, BN/SN eps 1e-4) follow.
PRESETS: dict[str, BigGANConfig] = {
    "128": BigGANConfig(resolution=128, G_ch=96, D_ch=96, dim_z=120, G_attn="64", D_attn="64"),
    "256": BigGANConfig(resolution=256, G_ch=96, D_ch=96, dim_z=120, G_attn="64", D_attn="64"),
    "ch64_256": BigGANConfig(resolution=256, G_ch=64, D_ch=64, dim_z=120, G_attn="64", D_attn="64"),
    "tfhub_128": BigGANConfig(resolution=128, dim_z=120, G_attn="64", BN_eps=1e-4, SN_eps=1e-4),
    "tfhub_256": BigGANConfig(resolution=256, dim_z=140, G_attn="128", BN_eps=1e-4, SN_eps=1e-4),
    "tfhub_512": BigGANConfig(resolution=512, dim_z=128, G_attn="64", BN_eps=1e-4, SN_eps=1e-4),
}
#: ``load_biggan(..., config=<int>)``: the preset meant by a bare resolution (512 only exists as TFHub G).
PRESET_BY_RESOLUTION = {128: "128", 256: "256", 512: "tfhub_512"}


def config_from_dgp_args(args: Mapping) -> dict:
    """Architecture fields from a DGP / BigGAN-PyTorch argument dict (``vars(parser.parse_args())``).

    Rejects settings whose layers this module does not implement, instead of building a wrong network.
    """
    unsupported = {
        "G_shared": (True, "non-shared class embeddings"), "G_param": ("SN", "non-spectral-norm G"),
        "D_param": ("SN", "non-spectral-norm D"), "norm_style": ("bn", "norm styles other than 'bn'"),
        "mybn": (False, "mybn"), "cross_replica": (False, "cross-replica BN"),
        "G_kernel_size": (3, "kernel sizes other than 3"), "D_kernel_size": (3, "kernel sizes other than 3"),
    }
    for key, (needed, what) in unsupported.items():
        if key in args and args[key] != needed:
            raise ValueError(f"{key}={args[key]!r}: {what} is not supported (needs {needed!r})")
    for key in ("G_nl", "D_nl"):
        if key in args and args[key] not in ("relu", "inplace_relu"):
            raise ValueError(f"{key}={args[key]!r}: only ReLU activations are supported")
    names = {f.name for f in dataclasses.fields(BigGANConfig)}
    values = {k: args[k] for k in names if k in args}
    if values.get("shared_dim", 1) == 0:  # official: shared_dim 0 means "same as dim_z"
        values["shared_dim"] = values.get("dim_z", BigGANConfig.dim_z)
    return values


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SpectralNorm:
    """Spectral-norm settings shared by every layer of one network."""

    num_svs: int
    num_itrs: int
    eps: float

    def conv(self, cin: int, cout: int, kernel: int = 3, bias: bool = True) -> SNConv2d:
        return SNConv2d(cin, cout, kernel, padding=kernel // 2, bias=bias,
                        num_svs=self.num_svs, num_itrs=self.num_itrs, eps=self.eps)

    def linear(self, fin: int, fout: int, bias: bool = True) -> SNLinear:
        return SNLinear(fin, fout, bias, num_svs=self.num_svs, num_itrs=self.num_itrs, eps=self.eps)


class ConditionalBatchNorm(nn.Module):
    """BigGAN's ``ccbn``: BN with stored statistics, then ``(1 + W_g cond)`` gain and ``W_b cond`` bias."""

    def __init__(self, channels: int, cond_dim: int, sn: _SpectralNorm, eps: float) -> None:
        super().__init__()
        self.gain = sn.linear(cond_dim, channels, bias=False)
        self.bias = sn.linear(cond_dim, channels, bias=False)
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(cond)).view(cond.size(0), -1, 1, 1)
        bias = self.bias(cond).view(cond.size(0), -1, 1, 1)
        if self.training:  # batch statistics, and the running averages updated
            out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, True, 0.1, self.eps)
            return out * gain + bias
        # Stored statistics: normalisation and class gain/bias fold into one affine map per (image, channel),
        # applied in a single pass over x (forward and backward) instead of three.
        scale = gain * torch.rsqrt(self.stored_var + self.eps).view(1, -1, 1, 1)
        return torch.addcmul(bias - self.stored_mean.view(1, -1, 1, 1) * scale, x, scale)


class OutputBatchNorm(nn.Module):
    """BigGAN's unconditional ``bn`` (learned ``gain``/``bias``, stored statistics)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias,
                            self.training, 0.1, OUTPUT_BN_EPS)


class SelfAttention(nn.Module):
    """SAGAN non-local block: ``x + gamma * o(g . softmax(theta^T phi))``, phi and g 2x2 max-pooled.

    ``channels_last``: the output keeps the channels-last layout the attention product comes in, and the
    convs after it follow. That was faster after G's attention (width 96, b4 G forward 0.39 vs 0.54x the
    official time: the 128^2 convs there have small weights) and slower after D's (0.91 vs 0.70 for D
    features: every conv copies its 1536-channel weight into that layout per call), so G uses it, D not.
    """

    def __init__(self, ch: int, sn: _SpectralNorm, channels_last: bool = False) -> None:
        super().__init__()
        self.ch, self.channels_last = ch, channels_last
        self.theta = sn.conv(ch, ch // 8, kernel=1, bias=False)
        self.phi = sn.conv(ch, ch // 8, kernel=1, bias=False)
        self.g = sn.conv(ch, ch // 2, kernel=1, bias=False)
        self.o = sn.conv(ch // 2, ch, kernel=1, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        # [N, 1 head, pixels, channels] for scaled_dot_product_attention; softmax(theta^T phi) has no 1/sqrt(d)
        theta = self.theta(x).flatten(2).transpose(1, 2)[:, None]
        phi = F.max_pool2d(self.phi(x), [2, 2]).flatten(2).transpose(1, 2)[:, None]
        g = F.max_pool2d(self.g(x), [2, 2]).flatten(2).transpose(1, 2).contiguous()[:, None]
        # The fused (tiled, flash) kernel never stores the pixels x pixels/4 attention matrix, which costs
        # the official bmm/softmax most of G's time; on CPU it needs one head size for q, k and v, and
        # zero-padding theta and phi leaves every dot product theta.phi unchanged.
        pad = g.shape[-1] - theta.shape[-1]
        o = F.scaled_dot_product_attention(F.pad(theta, (0, pad)), F.pad(phi, (0, pad)), g, scale=1.0)
        o = o[:, 0].transpose(1, 2).reshape(n, self.ch // 2, height, width)  # a channels-last view
        o = self.o(o if self.channels_last else o.contiguous())
        return self.gamma * o + x


def _adjacent_tap_sums(weight: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` kernel -> ``[..., 4, 4]``: zero-pad to 5x5, then sum every 2x2 window of taps."""
    padded = F.pad(weight, (1, 1, 1, 1))
    rows = padded[..., 1:, :] + padded[..., :-1, :]
    return rows[..., 1:] + rows[..., :-1]


def _upsampled_kernel(weight: torch.Tensor) -> torch.Tensor:
    """3x3 conv after 2x nearest upsampling == stride-2 transposed conv with this 4x4 kernel ([in, out, 4, 4])."""
    return _adjacent_tap_sums(weight.flip(2, 3)).transpose(0, 1)


def _pooled_kernel(weight: torch.Tensor) -> torch.Tensor:
    """3x3 conv then 2x2 average pooling == stride-2 4x4 conv with this kernel."""
    return _adjacent_tap_sums(weight) * 0.25


# The fused kernels save multiply-adds in proportion to the pixels (batch x H x W), but cost a few
# passes over a larger kernel, whatever the batch: below these input pixel counts they were slower on
# this CPU (measured at 16 and 96 channels per ch unit, bench/biggan_speed.py).
_MIN_PIXELS_FOR_TRANSPOSED_CONV = 256
_MIN_PIXELS_FOR_POOLED_CONV = 4096
# While G's weights are tuned the kernel is rebuilt (and differentiated) on every call instead of cached:
# at width 96, batch 4, the DGP tuning step was 0.70 / 0.61 / 0.67 / 0.76x the official time with this
# threshold at 256 / 1024 / 4096 / never (one A/B run; at batch 1 all within 0.49-0.51).
_MIN_PIXELS_FOR_TRANSPOSED_CONV_TUNED = 1024


def _upsample_conv3x3(x: torch.Tensor, conv: SNConv2d) -> torch.Tensor:
    """``conv(F.interpolate(x, scale_factor=2))`` without the upsampled input: each output pixel sees a 2x2
    input patch, so one transposed conv does 4 instead of 9 multiply-adds per output (same result up to
    float rounding: the kernel taps that see the same input pixel are summed first)."""
    tuned = conv.weight.requires_grad and torch.is_grad_enabled()  # the kernel is rebuilt on every call
    threshold = _MIN_PIXELS_FOR_TRANSPOSED_CONV_TUNED if tuned else _MIN_PIXELS_FOR_TRANSPOSED_CONV
    if x.shape[0] * x.shape[2] * x.shape[3] < threshold:
        return conv(F.interpolate(x, scale_factor=2))
    return F.conv_transpose2d(x, conv.normalized_weight(_upsampled_kernel), conv.bias, stride=2, padding=1)


def _conv3x3_avg_pool(x: torch.Tensor, conv: SNConv2d) -> torch.Tensor:
    """``F.avg_pool2d(conv(x), 2)`` as one stride-2 4x4 conv: 16 instead of 36 multiply-adds per output."""
    if x.shape[0] * x.shape[2] * x.shape[3] < _MIN_PIXELS_FOR_POOLED_CONV:
        return F.avg_pool2d(conv(x), 2)
    return F.conv2d(x, conv.normalized_weight(_pooled_kernel), conv.bias, stride=2, padding=1)


def _add_upsampled(h: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """``h + F.interpolate(low, scale_factor=2)`` by broadcasting, without materialising the upsampled ``low``."""
    n, c, height, width = low.shape
    return (h.reshape(n, c, height, 2, width, 2) + low[:, :, :, None, :, None]).reshape(h.shape)


class GBlock(nn.Module):
    """Up-sampling residual block with class/z-conditional BN, and DGP's optional BN->IN swap."""

    def __init__(self, cin: int, cout: int, cond_dim: int, sn: _SpectralNorm, bn_eps: float) -> None:
        super().__init__()
        self.conv1 = sn.conv(cin, cout)
        self.conv2 = sn.conv(cout, cout)
        self.conv_sc = sn.conv(cin, cout, kernel=1)  # every G block upsamples, so the shortcut is learned
        self.bn1 = ConditionalBatchNorm(cin, cond_dim, sn, bn_eps)
        self.bn2 = ConditionalBatchNorm(cout, cond_dim, sn, bn_eps)
        self.in1 = nn.InstanceNorm2d(cin, affine=True)
        self.in2 = nn.InstanceNorm2d(cout, affine=True)
        for p in (*self.in1.parameters(), *self.in2.parameters()):
            p.requires_grad_(False)  # DGP never optimises the IN affine parameters
        self.in_initialized = False

    @staticmethod
    @torch.no_grad()
    def _match_instance_norm(norm: nn.InstanceNorm2d, bn_out: torch.Tensor) -> None:
        """IN affine := per-channel mean and unbiased std of the BN output (DGP ``init_in``).

        DGP works on batch 1; for larger batches the per-image statistics are averaged.
        """
        mean = torch.mean(bn_out, (2, 3))
        std = torch.std(bn_out.reshape(bn_out.size(0), bn_out.size(1), -1), 2)
        norm.weight.copy_(std.mean(0))
        norm.bias.copy_(mean.mean(0))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, use_in: bool = False) -> torch.Tensor:
        if use_in:
            if not self.in_initialized:
                self._match_instance_norm(self.in1, self.bn1(x, cond))
            h = self.in1(x)
        else:
            h = self.bn1(x, cond)
            self.in_initialized = False  # DGP: any BN forward makes the next IN forward re-initialise
        h = _upsample_conv3x3(F.relu(h), self.conv1)
        if use_in:
            if not self.in_initialized:
                self._match_instance_norm(self.in2, self.bn2(h, cond))
                self.in_initialized = True
            h = self.in2(h)
        else:
            h = self.bn2(h, cond)
        h = self.conv2(F.relu(h))
        # the 1x1 shortcut conv commutes with nearest upsampling: run it on the 4x smaller input
        return _add_upsampled(h, self.conv_sc(x))


class DBlock(nn.Module):
    """Discriminator residual block (pre-activation except the first; optional 2x2 average pooling)."""

    def __init__(self, cin: int, cout: int, sn: _SpectralNorm, wide: bool, preactivation: bool,
                 downsample: bool) -> None:
        super().__init__()
        hidden = cout if wide else cin
        self.preactivation, self.downsample = preactivation, downsample
        self.conv1 = sn.conv(cin, hidden)
        self.conv2 = sn.conv(hidden, cout)
        self.learnable_sc = cin != cout or downsample
        if self.learnable_sc:
            self.conv_sc = sn.conv(cin, cout, kernel=1)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        # The official blocks after the first convolve, then pool; a 1x1 conv commutes with average
        # pooling (bias included), and pooling first makes the conv 4x cheaper.
        x = F.avg_pool2d(x, 2) if self.downsample else x
        return self.conv_sc(x) if self.learnable_sc else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = F.relu(self.conv1(h))
        h = _conv3x3_avg_pool(h, self.conv2) if self.downsample else self.conv2(h)
        return h + self._shortcut(x)


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """BigGAN G: ``forward(z, class_embedding, use_in)``; the embedding is ``G.shared(y)`` (or any vector)."""

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        self.config = config
        arch, ch = _G_ARCH[config.resolution], config.G_ch
        sn = _SpectralNorm(config.num_G_SVs, config.num_G_SV_itrs, config.SN_eps)
        self.dim_z, self.z_chunk_size = config.effective_dim_z, config.z_chunk_size
        cond_dim = config.shared_dim + config.z_chunk_size
        attention = _attention_labels(config.G_attn)

        self.shared = nn.Embedding(config.n_classes, config.shared_dim)
        self.linear = sn.linear(config.z_chunk_size if config.hier else config.dim_z,
                                arch.in_mult[0] * ch * BOTTOM_WIDTH**2)
        blocks = []
        for cin, cout, label in zip(arch.in_mult, arch.out_mult, arch.labels):
            group: list[nn.Module] = [GBlock(cin * ch, cout * ch, cond_dim, sn, config.BN_eps)]
            if label in attention:
                group.append(SelfAttention(cout * ch, sn, channels_last=True))
            blocks.append(nn.ModuleList(group))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(OutputBatchNorm(arch.out_mult[-1] * ch), nn.ReLU(),
                                          sn.conv(arch.out_mult[-1] * ch, 3))

    def reset_in_init(self) -> None:
        """Make the next instance-norm forward re-initialise IN from BN (DGP does this per image)."""
        for group in self.blocks:
            group[0].in_initialized = False

    def forward(self, z: torch.Tensor, class_embedding: torch.Tensor, use_in: bool = False) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.dim_z:
            raise ValueError(f"z must be [N, {self.dim_z}], got {list(z.shape)}")
        if class_embedding.ndim != 2 or class_embedding.shape != (z.shape[0], self.config.shared_dim):
            raise ValueError(f"class embedding must be [{z.shape[0]}, {self.config.shared_dim}], "
                             f"got {list(class_embedding.shape)}")
        if self.config.hier:
            z, *chunks = torch.split(z, self.z_chunk_size, 1)
            conds = [torch.cat([class_embedding, chunk], 1) for chunk in chunks]
        else:
            conds = [class_embedding] * len(self.blocks)
        with ieee_float32(z.is_cuda):
            h = self.linear(z).view(z.size(0), -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
            for group, cond in zip(self.blocks, conds):
                h = group[0](h, cond, use_in)
                for attention in group[1:]:
                    h = attention(h)
            return torch.tanh(self.output_layer(h)).contiguous()  # channels-last after the attention (see there)


class Discriminator(nn.Module):
    """BigGAN projection D: ``forward(x, y=None) -> (logits [N, 1], features)`` as in DGP."""

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        if config.resolution not in _D_ARCH:
            raise ValueError(f"the official BigGAN code defines no discriminator for {config.resolution} px "
                             f"(only {sorted(_D_ARCH)}); load the generator alone")
        self.config = config
        arch, ch = _D_ARCH[config.resolution], config.D_ch
        sn = _SpectralNorm(config.num_D_SVs, config.num_D_SV_itrs, config.SN_eps)
        attention = _attention_labels(config.D_attn)
        blocks = []
        for i, (cin, cout, label, down) in enumerate(zip(arch.in_mult, arch.out_mult, arch.labels, arch.downsample)):
            group: list[nn.Module] = [DBlock(cin * ch if i else 3, cout * ch, sn, config.D_wide,
                                             preactivation=i > 0, downsample=down)]
            if label in attention:
                group.append(SelfAttention(cout * ch, sn))
            blocks.append(nn.ModuleList(group))
        self.blocks = nn.ModuleList(blocks)
        self.linear = sn.linear(arch.out_mult[-1] * ch, 1)
        self.embed = SNEmbedding(config.n_classes, arch.out_mult[-1] * ch, num_svs=config.num_D_SVs,
                                 num_itrs=config.num_D_SV_itrs, eps=config.SN_eps)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, relu_last_feature: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``y``: class indices ``[N]`` or a one-hot/soft ``[N, n_classes]`` matrix (projection term).

        ``features``: every block's output (each DBlock, each attention), then the sum-pooled
        ``ReLU(last)`` vector. ``relu_last_feature`` reproduces DGP's in-place-ReLU aliasing (see module doc).
        """
        features = []
        h = x
        with ieee_float32(x.is_cuda):
            for group in self.blocks:
                for block in group:
                    h = block(h)
                    features.append(h)
            h = F.relu(h)
            if relu_last_feature:
                features[-1] = h
            pooled = torch.sum(h, [2, 3])
            features.append(pooled)
            out = self.linear(pooled)
            if y is not None:
                out = out + torch.sum(self.embed(y) * pooled, 1, keepdim=True)
        return out, features


# ----------------------------------------------------------------------------------------------
# The prior
# ----------------------------------------------------------------------------------------------


class BigGANPrior(GenerativePrior):
    """BigGAN behind the shared prior interface. Its "ws" is z itself: ``[N, 1, dim_z]``.

    The class enters through ``synthesis(ws, c)`` as the embedding ``c @ G.shared.weight`` (soft classes,
    category transfer), or explicitly through :meth:`render` (DGP keeps/optimises the embedding vector).
    Built in eval mode, which is how DGP runs both networks.
    """

    family = "biggan"
    has_mapping = False

    def __init__(self, config: BigGANConfig | None = None, with_discriminator: bool = True) -> None:
        super().__init__()
        self.arch_config = config or BigGANConfig()
        self.G = Generator(self.arch_config)
        self.D = Discriminator(self.arch_config) if with_discriminator else None
        self.instance_norm = False
        self.eval()

    # ----- shapes ---------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        return self.arch_config.resolution

    @property
    def z_dim(self) -> int:
        return self.G.dim_z

    @property
    def w_dim(self) -> int:
        return self.G.dim_z

    @property
    def c_dim(self) -> int:
        return self.arch_config.n_classes

    @property
    def num_ws(self) -> int:
        return 1

    # ----- generation -----------------------------------------------------------------------
    def class_embedding(self, c: torch.Tensor | int | Sequence[int]) -> torch.Tensor:
        """``G.shared`` applied to class indices ``[N]`` or to a one-hot/soft matrix ``[N, n_classes]``."""
        c = torch.as_tensor(c, device=self.device)
        if c.is_floating_point():
            if c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"class matrix must be [N, {self.c_dim}], got {list(c.shape)}")
            return c.to(self.G.shared.weight.dtype) @ self.G.shared.weight
        c = c.reshape(-1).long()
        if c.numel() and (c.min() < 0 or c.max() >= self.c_dim):
            raise ValueError(f"class index out of range: model has classes 0..{self.c_dim - 1}")
        return self.G.shared(c)

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """``z[:, None]``. With ``w_avg = 0`` StyleGAN-style truncation is plain scaling ``psi * z``.

        ``c`` enters in :meth:`synthesis`; ``truncation_cutoff`` has nothing to cut with a single ws.
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        return (z if truncation_psi == 1 else z * truncation_psi)[:, None]

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "const") -> torch.Tensor:
        """Image from ws ``[N, 1, z_dim]`` and classes ``c`` (BigGAN has no noise inputs: ``noise_mode`` is unused)."""
        if ws.ndim != 3 or ws.shape[1:] != (1, self.z_dim):
            raise ValueError(f"BigGAN ws must be [N, 1, {self.z_dim}] (z itself), got {list(ws.shape)}")
        if c is None:
            raise ValueError(f"BigGAN is class-conditional ({self.c_dim} classes): give c")
        return self.render(ws[:, 0], self.class_embedding(c))

    def render(self, z: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        """Image from z ``[N, z_dim]`` and an explicit class-embedding ``[N or 1, shared_dim]``.

        Uses instance norm in the GBlocks when :meth:`use_instance_norm` switched it on.
        """
        if class_embedding.ndim == 2 and class_embedding.shape[0] == 1 and z.shape[0] != 1:
            class_embedding = class_embedding.expand(z.shape[0], -1)
        return self.G(z, class_embedding, use_in=self.instance_norm)

    def w_avg(self, c: torch.Tensor | None = None) -> torch.Tensor:
        n = 1 if c is None else torch.as_tensor(c).shape[0]
        return torch.zeros(n, self.w_dim, device=self.device)

    def sample_z(self, n: int, generator: torch.Generator | None = None, std: float = 1.0) -> torch.Tensor:
        """``std * N(0, I)``: DGP samples its candidates this way (``--sample_std`` 0.3/0.5 in its scripts).

        No truncated normal: DGP never truncates z (BigGAN's truncation trick is a sampling-time choice).
        """
        return (std * torch.randn(n, self.z_dim, generator=generator)).to(self.device)

    # ----- DGP specifics ----------------------------------------------------------------------
    def blocks(self) -> list[nn.Module]:
        """DGP's progressive fine-tuning groups (``Generator.get_params``), shallow to deep.

        Group 0 is ``G.linear`` (first z chunk -> 4x4 map); group ``k`` is ``G.blocks[k-1]``: the GBlock
        and, at the attention resolution, its SelfAttention. DGP's ``ft_num = k`` trains groups
        ``0..k-1``. ``G.output_layer`` is in no group (DGP never tunes it); ``G.shared`` joins group 0
        only with ``update_embed`` (see :meth:`parameter_groups`).
        """
        return [self.G.linear, *self.G.blocks]

    def parameter_groups(self, update_embed: bool = False) -> list[list[nn.Parameter]]:
        """Parameters of each :meth:`blocks` group, with ``G.shared`` in group 0 when ``update_embed``.

        Includes the frozen IN affine parameters, as DGP's lists do (they have ``requires_grad=False``).
        """
        groups = [list(module.parameters()) for module in self.blocks()]
        if update_embed:
            groups[0] += list(self.G.shared.parameters())
        return groups

    def use_instance_norm(self, enabled: bool = True) -> None:
        """DGP's ``use_in``: GBlocks normalise with IN (initialised from BN on the next forward) instead of BN."""
        self.instance_norm = bool(enabled)

    def reset_instance_norm(self) -> None:
        """Forget the IN initialisation (DGP's ``reset_in_init``, called per image)."""
        self.G.reset_in_init()

    # ----- discriminator ----------------------------------------------------------------------
    @property
    def has_discriminator(self) -> bool:
        return self.D is not None

    def discriminate(
        self, img: torch.Tensor, c: torch.Tensor | None = None, relu_last_feature: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(logits [N, 1], features)``; ``c`` (indices or ``[N, n_classes]``) adds the projection term."""
        if self.D is None:
            raise NotImplementedError("this BigGAN was loaded without a discriminator")
        if img.ndim != 4 or img.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(f"discriminator input must be [N, 3, {self.resolution}, {self.resolution}], "
                             f"got {list(img.shape)}")
        if c is not None:
            c = torch.as_tensor(c, device=img.device)
            if not c.is_floating_point():
                c = c.reshape(-1).long()
        return self.D(img, c, relu_last_feature=relu_last_feature)

    def discriminator_features(self, img: torch.Tensor, c: torch.Tensor | None = None) -> list[torch.Tensor]:
        """DGP's ``h_list``: per-block outputs (+ attention), then the pooled vector, shallow to deep.

        The last block's entry is post-ReLU, exactly what DGP's feature loss compares (``ftr_num = k``
        uses ``features[-k:]``). Use :meth:`discriminate` with ``relu_last_feature=False`` for the raw one.
        """
        return self.discriminate(img, c)[1]

    # ----- serialisation ------------------------------------------------------------------------
    def config(self) -> dict:
        return {"family": self.family, **dataclasses.asdict(self.arch_config),
                "with_discriminator": self.has_discriminator}


def from_config(config: dict, state_dict: Mapping[str, torch.Tensor]) -> BigGANPrior:
    """Rebuild from :meth:`BigGANPrior.config` and :meth:`~torch.nn.Module.state_dict` (our native format)."""
    values = dict(config)
    family = values.pop("family", "biggan")
    if family != "biggan":
        raise ValueError(f"config is for family {family!r}, not 'biggan'")
    with_discriminator = bool(values.pop("with_discriminator", True))
    prior = BigGANPrior(BigGANConfig.from_dict(values), with_discriminator=with_discriminator)
    _check_keys_and_shapes(prior, state_dict, "BigGAN prior")
    prior.load_state_dict(state_dict, strict=True)
    return prior


# ----------------------------------------------------------------------------------------------
# Loading DGP / BigGAN-PyTorch state dicts
# ----------------------------------------------------------------------------------------------

_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.")
_IN_KEY = re.compile(r"^blocks\.\d+\.0\.in[12]\.(weight|bias)$")


def _block_indices(state: Mapping[str, torch.Tensor], sub: str) -> list[int]:
    """Sorted block indices ``i`` that have a ``blocks.<i>.<sub>...`` entry."""
    return sorted({int(m[1]) for k in state if (m := _BLOCK.match(k)) and m[2] == sub})


def _shape(state: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Size:
    if key not in state:
        raise CheckpointMismatchError(f"{what} state dict has no {key!r}; is this a BigGAN-PyTorch/DGP {what}?")
    return state[key].shape


def _infer_shape_fields(g_state: Mapping[str, torch.Tensor], d_state: Mapping[str, torch.Tensor] | None) -> dict:
    n_classes, shared_dim = _shape(g_state, "shared.weight", "generator")
    n_blocks = len(_block_indices(g_state, "0"))
    resolution = BOTTOM_WIDTH * 2**n_blocks
    if resolution not in _G_ARCH:
        raise CheckpointMismatchError(f"generator has {n_blocks} blocks ({resolution} px): not a BigGAN layout "
                                      f"(known resolutions {sorted(_G_ARCH)})")
    arch = _G_ARCH[resolution]
    g_ch, rest = divmod(_shape(g_state, "output_layer.2.weight", "generator")[1], arch.out_mult[-1])
    linear_in = _shape(g_state, "linear.weight", "generator")[1]
    cond_dim = _shape(g_state, "blocks.0.0.bn1.gain.weight", "generator")[1]
    hier = cond_dim == shared_dim + linear_in
    if rest or not (hier or cond_dim == shared_dim):
        raise CheckpointMismatchError(f"generator shapes fit no BigGAN config (cond {cond_dim}, shared "
                                      f"{shared_dim}, z chunk {linear_in})")
    fields = dict(resolution=resolution, G_ch=g_ch, n_classes=n_classes, shared_dim=shared_dim, hier=hier,
                  dim_z=linear_in * (n_blocks + 1) if hier else linear_in,
                  G_attn=_attention_spec({arch.labels[i] for i in _block_indices(g_state, "1")}),
                  num_G_SVs=sum(bool(re.fullmatch(r"linear\.u\d+", k)) for k in g_state))
    if d_state is not None:
        if resolution not in _D_ARCH or len(_block_indices(d_state, "0")) != len(_D_ARCH[resolution].labels):
            raise CheckpointMismatchError(f"discriminator with {len(_block_indices(d_state, '0'))} blocks does not "
                                          f"match a {resolution} px generator")
        d_arch = _D_ARCH[resolution]
        d_classes = _shape(d_state, "embed.weight", "discriminator")[0]
        if d_classes != n_classes:
            raise CheckpointMismatchError(f"generator has {n_classes} classes, discriminator {d_classes}")
        hidden = _shape(d_state, "blocks.0.0.conv1.weight", "discriminator")[0]
        d_out = _shape(d_state, "blocks.0.0.conv2.weight", "discriminator")[0]
        fields.update(D_ch=d_out // d_arch.out_mult[0], D_wide=hidden == d_out,
                      D_attn=_attention_spec({d_arch.labels[i] for i in _block_indices(d_state, "1")}),
                      num_D_SVs=sum(bool(re.fullmatch(r"linear\.u\d+", k)) for k in d_state))
    return fields


def _signature(config: BigGANConfig, with_discriminator: bool) -> dict:
    """The fields that decide tensor shapes (what a state dict can confirm or contradict)."""
    sig = dict(resolution=config.resolution, G_ch=config.G_ch, n_classes=config.n_classes,
               shared_dim=config.shared_dim, hier=config.hier, dim_z=config.effective_dim_z,
               G_attn=_attention_spec(_attention_labels(config.G_attn)), num_G_SVs=config.num_G_SVs)
    if with_discriminator:
        sig.update(D_ch=config.D_ch, D_wide=config.D_wide, num_D_SVs=config.num_D_SVs,
                   D_attn=_attention_spec(_attention_labels(config.D_attn)))
    return sig


def infer_config(g_state: Mapping[str, torch.Tensor], d_state: Mapping[str, torch.Tensor] | None = None) -> dict:
    """Architecture read from tensor shapes; eps/iteration settings from the first matching :data:`PRESETS`.

    Shapes cannot tell DGP's 128 px model from the TFHub 128 conversion (same shapes, different eps):
    DGP's settings (BN_eps 1e-5, SN_eps 1e-6) win, as DGP presets are listed first. Unmatched
    shapes get :class:`BigGANConfig`'s defaults (DGP's) for the non-shape fields.
    """
    fields = _infer_shape_fields(g_state, d_state)
    with_d = d_state is not None
    for preset in PRESETS.values():
        if _signature(preset, with_d) == fields:
            return dataclasses.asdict(dataclasses.replace(preset, **fields))
    if not with_d:  # a generator-only config: D fields are unused, keep them valid for any resolution
        fields.update(D_ch=fields["G_ch"], D_attn="0")
    return dataclasses.asdict(BigGANConfig(**fields))


def _check_keys_and_shapes(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} ({len(items)}): {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected),
                                      ("wrong shape, file vs model", wrong)) if items]
        raise CheckpointMismatchError(f"{what} state dict does not fit the configured architecture: "
                                      + "; ".join(parts))


def _resolve_config(config: dict | int | str | BigGANConfig | None, inferred: dict, with_d: bool) -> BigGANConfig:
    if config is None:
        return BigGANConfig(**inferred)
    if isinstance(config, BigGANConfig):
        chosen, label = config, "given config"
    elif isinstance(config, Mapping):
        return BigGANConfig.from_dict({**inferred, **config})  # explicit values win; shapes are checked later
    else:
        name = PRESET_BY_RESOLUTION.get(config, str(config)) if isinstance(config, int) else str(config)
        if name not in PRESETS:
            raise ValueError(f"unknown BigGAN preset {config!r}; known: {sorted(PRESETS)} or a resolution "
                             f"in {sorted(PRESET_BY_RESOLUTION)}")
        chosen, label = PRESETS[name], f"preset {name!r}"
    want, have = _signature(chosen, with_d), _signature(BigGANConfig(**inferred), with_d)
    diff = {k: (want[k], have[k]) for k in want if want[k] != have[k]}
    if diff:
        raise CheckpointMismatchError(
            f"checkpoint does not match {label}: "
            + ", ".join(f"{k} {a!r} expected, file has {b!r}" for k, (a, b) in diff.items())
            + " (pass config=None to use the architecture read from the file)")
    return chosen


def from_state_dicts(
    g_state: Mapping[str, torch.Tensor],
    d_state: Mapping[str, torch.Tensor] | None = None,
    config: dict | int | str | BigGANConfig | None = None,
) -> BigGANPrior:
    """Prior from DGP/BigGAN-PyTorch state dicts (``G_ema_*.pth`` and optionally ``D_*.pth``).

    ``config``: ``None`` reads the architecture from the tensors; a preset name / resolution
    (:data:`PRESETS`) is checked against them; a dict overrides inferred fields (e.g. ``SN_eps``).
    BigGAN-PyTorch checkpoints lack DGP's instance-norm entries ``blocks.*.0.in{1,2}.*``; those get
    IN's defaults (DGP re-initialises them from BN before use anyway). Anything else must match exactly.
    """
    cfg = _resolve_config(config, infer_config(g_state, d_state), d_state is not None)
    prior = BigGANPrior(cfg, with_discriminator=d_state is not None)
    g_state = dict(g_state)
    for key, value in prior.G.state_dict().items():
        if _IN_KEY.match(key) and key not in g_state:
            g_state[key] = value
    _check_keys_and_shapes(prior.G, g_state, "generator")
    prior.G.load_state_dict(g_state, strict=True)
    if d_state is not None:
        assert prior.D is not None
        _check_keys_and_shapes(prior.D, d_state, "discriminator")
        prior.D.load_state_dict(d_state, strict=True)
    return prior


def _read_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(source, Mapping):
        return source
    state = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(f"{source} is not a state dict (a dict of tensors)")
    return state


def load_biggan(
    g: str | Path | Mapping[str, torch.Tensor],
    d: str | Path | Mapping[str, torch.Tensor] | None = None,
    config: dict | int | str | BigGANConfig | None = None,
) -> BigGANPrior:
    """Load ``G_ema_<s>.pth`` (+ ``D_<s>.pth``), given as paths or as already-read state dicts.

    Files are read with ``torch.load(map_location='cpu', weights_only=True)``; see :func:`from_state_dicts`.
    """
    return from_state_dicts(_read_state_dict(g), None if d is None else _read_state_dict(d), config)
