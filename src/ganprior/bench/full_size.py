"""Full-size readiness: networks of the released checkpoints' architecture with random weights.

The official checkpoints are not on this machine, but their architectures are known exactly (the
registry entry gives family, resolution and classes; the construction formulas and the official
training configs give the rest, ``stylegan_spec.md`` §2-4 and ``dgp_spec.md``). Building them with
ganprior's own constructors and random weights measures what every method costs at benchmark scale:
time per step and peak memory. ``width`` < 1 scales every channel count down (the test's quick
version); ``resolution`` overrides the output size (StyleGAN-XL keeps its 16² stem and adds stages).

The perceptual distance of the paper runs (NVIDIA's VGG16-LPIPS) is not cached here either; its
cost is stood in for by a random-weight VGG16 trunk with the same call convention (area-reduced to
256² when larger, five LPIPS taps), registered as ``vgg16-random``.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganprior.losses import register_perceptual
from ganprior.losses.perceptual import PerceptualDistance, _normalize_channels
from ganprior.models.prior import GenerativePrior

#: channel plan of VGG16's five stages (two or three 3x3 convs each, LPIPS tap after the last ReLU)
_VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class RandomVGG16Distance(PerceptualDistance):
    """A stand-in with the cost of ``nvidia-vgg16``: VGG16 convs (random weights), images > 256²
    area-reduced to 256², LPIPS-style distance over the five taps. Only for timing and memory."""

    name = "vgg16-random"
    min_size = 16

    def __init__(self, width: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        stages, c_in = [], 3
        for channels, convs in _VGG16_STAGES:
            c_out = max(4, int(channels * width))
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
                c_in = c_out
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.requires_grad_(False)

    def _taps(self, img: torch.Tensor) -> list[torch.Tensor]:
        if img.shape[-1] > 256 or img.shape[-2] > 256:
            img = F.interpolate(img, size=(256, 256), mode="area")
        taps, x = [], img.expand(-1, 3, -1, -1)
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            taps.append(x)
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a.new_zeros(a.shape[0])
        for x, y in zip(self._taps(a), self._taps(b)):
            total = total + (_normalize_channels(x) - _normalize_channels(y)).square().sum(1).flatten(1).mean(1)
        return total


register_perceptual("vgg16-random", RandomVGG16Distance)


# ----- the architectures ------------------------------------------------------------------------
def _scaled(value: int, width: float) -> int:
    return max(8, int(round(value * width)))


def stylegan_xl_imagenet(resolution: int = 512, width: float = 1.0) -> GenerativePrior:
    """StyleGAN-XL ImageNet (README settings: stem 16², 10 layers, 7 head layers per ×2 stage;
    SG3-T widths doubled, ``channel_base`` 65536, ``channel_max`` 1024): 37 ws at 512²."""
    from ganprior.models.stylegan_xl import StyleGANXLPrior

    synthesis = stylegan_xl_synthesis(resolution, width)
    mapping = dict(z_dim=64, c_dim=1000, w_dim=512, num_ws=len(synthesis["layers"]) + 1, num_layers=2)
    return StyleGANXLPrior(mapping, synthesis)


def stylegan_xl_synthesis(resolution: int = 512, width: float = 1.0) -> dict:
    """The synthesis config of :func:`stylegan_xl_imagenet` (layer schedule only, no weights)."""
    from ganprior.models import stylegan3
    from ganprior.models.stylegan_xl import superres_schedule

    base, top = _scaled(65536, width), _scaled(1024, width)
    synthesis = stylegan3.synthesis_schedule(512, 16, channel_base=base, channel_max=top, num_layers=10)
    while synthesis["img_resolution"] < resolution:
        synthesis = superres_schedule(synthesis, 7, 2, channel_base=base, channel_max=top)
    return synthesis


def _stylegan2_discriminator(resolution: int, width: float) -> dict:
    return dict(c_dim=0, img_resolution=resolution, channel_base=_scaled(32768, width),
                channel_max=_scaled(512, width), mbstd_group_size=4)


def stylegan2_ffhq(resolution: int = 1024, width: float = 1.0) -> GenerativePrior:
    """StyleGAN2 FFHQ (config F: 8 mapping layers, ``channel_base`` 32768, ``channel_max`` 512) with its D."""
    from ganprior.models.stylegan2 import StyleGAN2Prior

    generator = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, mapping_kwargs=dict(num_layers=8),
                     synthesis_kwargs=dict(channel_base=_scaled(32768, width), channel_max=_scaled(512, width)))
    return StyleGAN2Prior(generator, _stylegan2_discriminator(resolution, width))


def stylegan3_t_ffhq(resolution: int = 1024, width: float = 1.0) -> GenerativePrior:
    """StyleGAN3-T FFHQ (``channel_base`` 32768, ``channel_max`` 512, 14 layers, 16 ws) with its SG2 D."""
    from ganprior.models import stylegan3

    synthesis = stylegan3.synthesis_schedule(512, resolution, channel_base=_scaled(32768, width),
                                             channel_max=_scaled(512, width))
    mapping = dict(z_dim=512, c_dim=0, w_dim=512, num_ws=len(synthesis["layers"]) + 1, num_layers=2)
    return stylegan3.StyleGAN3Prior(mapping, synthesis, _stylegan2_discriminator(resolution, width))


def biggan_dgp(resolution: int = 256, width: float = 1.0) -> GenerativePrior:
    """DGP's BigGAN (G_ch = D_ch = 96, dim_z 120, hierarchical z, attention at 64²) with its D;
    resolutions below 256 give the 128² architecture."""
    from ganprior.models.biggan import PRESETS, BigGANConfig, BigGANPrior

    resolution = 256 if resolution >= 256 else 128  # DGP released 128² and 256² only
    preset = PRESETS[str(resolution)]
    ch = _scaled(preset.G_ch, width)
    return BigGANPrior(BigGANConfig(resolution=resolution, G_ch=ch, D_ch=ch, dim_z=preset.dim_z,
                                    shared_dim=preset.shared_dim, G_attn=preset.G_attn, D_attn=preset.D_attn))


#: registry name -> (builder, the methods that apply: DGP needs a discriminator)
ARCHITECTURES: dict[str, tuple[Callable[..., GenerativePrior], tuple[str, ...]]] = {
    "stylegan_xl-imagenet512": (stylegan_xl_imagenet, ("w", "wplus", "cri", "pti", "pulse")),
    "stylegan2-ffhq-1024x1024": (stylegan2_ffhq, ("w", "wplus", "cri", "pti", "pulse", "dgp")),
    "stylegan3-t-ffhq-1024x1024": (stylegan3_t_ffhq, ("w", "wplus", "cri", "pti", "pulse", "dgp")),
    "biggan-dgp-256": (biggan_dgp, ("dgp",)),
}


def build(name: str, width: float = 1.0, resolution: int | None = None, seed: int = 0) -> GenerativePrior:
    """The registry entry ``name``'s architecture with random (seeded) weights, frozen, eval mode."""
    from ganprior.loading.registry import get_spec

    if name not in ARCHITECTURES:
        raise ValueError(f"no full-size architecture for {name!r}; known: {', '.join(ARCHITECTURES)}")
    spec = get_spec(name)
    torch.manual_seed(seed)
    prior = ARCHITECTURES[name][0](resolution=resolution or spec.resolution, width=width)
    if resolution is None and (prior.resolution, prior.c_dim) != (spec.resolution, spec.classes):
        raise AssertionError(f"{name}: built {prior.resolution}px / {prior.c_dim} classes, registry says "
                             f"{spec.resolution}px / {spec.classes}")
    return prior.eval().requires_grad_(False)


# ----- measurements -----------------------------------------------------------------------------
def limit_memory(megabytes: float) -> None:
    """Cap this process's address space, so an oversized case fails with a MemoryError here instead
    of waking the kernel's OOM killer on a shared machine."""
    limit = int(megabytes * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    On Linux ``VmHWM`` of ``/proc/self/status``, because ``ru_maxrss`` survives ``fork`` + ``exec``: a
    worker started by a process larger than itself would report its parent's size (Linux reports KiB,
    macOS bytes).
    """
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def cpu_label() -> str:
    """The CPU a case ran on, e.g. ``"AMD EPYC, AVX2"``: CPU seconds compare only within one kind."""
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def parameter_count(prior: GenerativePrior) -> tuple[int, int]:
    """``(generator parameters, discriminator parameters)``."""
    d = getattr(prior, "D", None)
    n_d = sum(p.numel() for p in d.parameters()) if isinstance(d, nn.Module) else 0
    return sum(p.numel() for p in prior.parameters()) - n_d, n_d


def step_gflop(prior: GenerativePrior) -> dict[str, float]:
    """Floating-point operations (GFLOP, torch's FLOP counter: matmuls and convs) of one synthesis
    forward and its backward to the latents at batch 1, counted on the meta device (nothing runs).
    Moves ``prior`` to the meta device: call it on a copy you no longer need."""
    from torch.utils.flop_counter import FlopCounterMode

    prior = prior.to("meta")
    c = torch.zeros(1, prior.c_dim, device="meta")
    shape = (1, prior.num_ws, prior.w_dim) if prior.has_mapping else (1, 1, prior.z_dim)
    latent = torch.zeros(shape, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        img = prior.synthesis(latent, c)
    with FlopCounterMode(display=False) as backward:
        img.sum().backward()
    return {"forward": round(forward.get_total_flops() / 1e9, 1), "backward": round(backward.get_total_flops() / 1e9, 1)}


def bench_options(method: str, prior: GenerativePrior, perceptual: str) -> dict[str, Any]:
    """Options that keep a measurement short but exercise every stage: the centroid bank and the
    candidate selection keep their real sizes at the *scoring* end (10 centroids, 8 per chunk), the
    k-means samples are cut (mapping-only, cheap)."""
    options: dict[str, Any] = {}
    if method in ("w", "wplus", "cri", "pti", "pulse"):
        options.update(n_samples=1000, perceptual=perceptual)
    if method in ("w", "wplus", "pti"):
        options["w_avg_samples"] = 1000
    if method == "pulse":
        options["fit_samples"] = 1000
    if method == "cri":
        options["cache"] = False
    if method == "dgp":
        options.update(select_num=8)
    return options


def run_method(prior: GenerativePrior, method: str, steps: int, perceptual: str = "vgg16-random",
               task: str = "sr4", seed: int = 0, batch: int = 1) -> dict[str, Any]:
    """Restorations of ``batch`` random sr4 observations through :func:`ganprior.restore_batch` at
    ``batch_size=batch`` with every stage capped at ``steps``: wall and process-CPU seconds, seconds
    per step of each stage (summed over the batch: a batched stage charges each image its share, a
    per-image stage runs them one after another) and the process's peak memory."""
    from ganprior.api import restore_batch

    R = prior.resolution
    g = torch.Generator().manual_seed(seed)
    observations = [torch.rand(1, 3, R // 4, R // 4, generator=g) * 2 - 1 for _ in range(batch)]
    start, cpu = time.perf_counter(), time.process_time()
    results = restore_batch(observations, task=task, method=method, model=prior, batch_size=batch,
                            class_index=1 if prior.c_dim else None, seed=seed, steps=steps, progress=False,
                            options=bench_options(method, prior, perceptual))
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    steps_per_stage: dict[str, int] = {}
    for entry in results[0].result.losses:
        steps_per_stage[entry["stage"]] = steps_per_stage.get(entry["stage"], 0) + 1
    timings = {k: round(sum(r.timings.get(k, 0.0) for r in results), 3) for k in results[0].timings}
    return {"method": method, "batch": batch, "seconds": round(total, 3), "cpu_seconds": round(cpu, 3),
            "timings": timings, "steps": steps_per_stage,
            "s_per_step": {stage: round(timings[stage] / n, 3) for stage, n in steps_per_stage.items()
                           if stage in timings},
            "stopped": [r.stopped for r in results if r.stopped] or None, "peak_rss_mb": round(peak_rss_mb(), 1)}


def random_inputs(prior: GenerativePrior, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded ``(c, ws, target image)`` for a batch: random classes, mapped latents (BigGAN: z), noise target."""
    g = torch.Generator().manual_seed(seed)
    c = prior.class_matrix(torch.randint(0, max(prior.c_dim, 1), (batch,), generator=g), batch) if prior.c_dim \
        else torch.zeros(batch, 0)
    with torch.no_grad():
        ws = prior.mapping(torch.randn(batch, prior.z_dim, generator=g), c) if prior.has_mapping \
            else torch.randn(batch, 1, prior.z_dim, generator=g)
    return c, ws, torch.rand(batch, 3, prior.resolution, prior.resolution, generator=g) * 2 - 1


def run_step(prior: GenerativePrior, batch: int, perceptual: str = "vgg16-random", seed: int = 0,
             rounds: int = 2) -> dict[str, Any]:
    """The inner step every latent method repeats, at ``batch`` images: synthesis from W+ latents,
    ×4 down-sampling, perceptual + MSE to a target, backward to the latents. The best of ``rounds``
    (the first includes one-off allocations), wall and process-CPU seconds."""
    from ganprior.losses import get_perceptual

    distance = get_perceptual(perceptual, prior)
    c, ws, target = random_inputs(prior, batch, seed)
    times, cpu_times = [], []
    for _ in range(rounds):
        latent = ws.clone().requires_grad_(True)
        start, cpu = time.perf_counter(), time.process_time()
        img = prior.synthesis(latent, c)
        small = F.avg_pool2d(img, 4)
        up = F.interpolate(small, size=img.shape[-2:], mode="bilinear", align_corners=False)
        loss = (distance(up, target) + (small - F.avg_pool2d(target, 4)).square().flatten(1).mean(1)).sum()
        loss.backward()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
        if not torch.isfinite(latent.grad).all():
            raise FloatingPointError("non-finite gradient in the full-size step")
    return {"batch": batch, "s_per_step": round(min(times), 3), "s_per_image": round(min(times) / batch, 3),
            "cpu_s_per_step": round(min(cpu_times), 3), "rounds": rounds, "peak_rss_mb": round(peak_rss_mb(), 1)}
