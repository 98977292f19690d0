"""Class-conditional StyleGAN2 training for the embedded prior (CPU or GPU, resumable).

What is trained is exactly what the rest of the package loads: ``ganprior.models.stylegan2``'s
Generator/Discriminator, exported as a :class:`StyleGAN2Prior` in our native format. The recipe is
StyleGAN2's (non-saturating loss, lazy R1, Adam betas (0, 0.99), equalised learning rate with the
mapping network at 0.01x, style mixing, generator EMA with ramp-up) sized for a 2-core CPU, plus
DiffAugment because the dataset is small.

A run lives in one folder: ``ckpt.pt`` (everything needed to resume bit-exactly), ``prior.safetensors``
(the EMA generator + D, loadable with ``ganprior.loading.native.load_native``), ``log.jsonl``
(losses and seconds per iteration), ``samples/`` (one row per class) and ``reals.png``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ganprior.data.emoji import EmojiImages, load_emoji_npz
from ganprior.models.stylegan2 import StyleGAN2Prior
from ganprior.training.augment import DiffAugment
from ganprior.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ganprior.training.losses import discriminator_loss, generator_loss, r1_penalty

CHECKPOINT_FORMAT = "ganprior-train-1"
SAMPLE_SEED = 20240601
PRECISIONS = ("fp32", "bf16")


#: what ``train(..., overrides=...)`` may change when a run resumes (the schedule, not the networks)
RESUME_OVERRIDES = ("lr_g", "lr_d", "ema_kimg")


class TrainingDiverged(RuntimeError):
    """A loss became NaN/inf: resume from the last checkpoint with a lower learning rate or more R1."""


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a run (stored in the checkpoint; a resumed run keeps its own).

    The network defaults are the fast CPU configuration of docs (about 1.4 M generator parameters
    at 32x32: synthesis channels 256, 128, 64, 32 for 4..32 px, a 3-layer 128-d mapping).
    """

    batch: int = 32
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 3
    g_channel_base: int = 1024
    g_channel_max: int = 256
    d_channel_base: int = 1024
    d_channel_max: int = 128
    d_mapping_layers: int = 2
    lr_g: float = 0.0025
    lr_d: float = 0.0025
    r1_gamma: float = 0.1
    r1_interval: int = 4
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    style_mixing_prob: float = 0.9
    augment: str = "color,translation,cutout"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch < 2:
            raise ValueError("batch must be at least 2 (the discriminator's minibatch-std layer groups samples)")
        if self.r1_interval < 1:
            raise ValueError("r1_interval must be >= 1")
        DiffAugment(self.augment)  # validates the policy

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def prior_config(self, resolution: int, c_dim: int) -> dict[str, dict]:
        """Constructor arguments of the :class:`StyleGAN2Prior` this config trains."""
        generator = dict(
            z_dim=self.z_dim, c_dim=c_dim, w_dim=self.w_dim, img_resolution=resolution,
            mapping_kwargs=dict(num_layers=self.mapping_layers),
            synthesis_kwargs=dict(channel_base=self.g_channel_base, channel_max=self.g_channel_max,
                                  fused_modconv=False),
        )
        discriminator = dict(
            c_dim=c_dim, img_resolution=resolution, channel_base=self.d_channel_base,
            channel_max=self.d_channel_max, mbstd_group_size=min(4, self.batch),
            mapping_kwargs=dict(num_layers=self.d_mapping_layers),
        )
        return {"generator": generator, "discriminator": discriminator}


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class Trainer:
    """Holds the networks, optimisers and counters of one run; :meth:`step` is one D + one G update.

    ``precision`` and ``channels_last`` are runtime choices, not part of the run's config (a run may
    resume with other ones): ``"bf16"`` runs the forward passes under bfloat16 autocast (weights,
    optimiser moments, EMA and losses stay float32); ``channels_last`` stores the networks and images
    NHWC, which some CPU convolution kernels prefer.
    """

    def __init__(self, config: TrainConfig, data: EmojiImages, device: str | torch.device = "cpu",
                 state: dict[str, Any] | None = None, precision: str = "fp32", channels_last: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.config = config
        self.device = torch.device(device)
        self.precision = precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.classes = data.classes
        self.reals = images_to_tensor(data.images).to(self.device, memory_format=self.memory_format)
        self.labels = torch.as_tensor(data.labels, dtype=torch.long, device=self.device)
        self.c_dim = len(self.classes)
        self.resolution = data.resolution
        if state is None:
            torch.manual_seed(config.seed)
        self.prior_kwargs = config.prior_config(self.resolution, self.c_dim)
        self.model = StyleGAN2Prior(**self.prior_kwargs).to(self.device, memory_format=self.memory_format).train()
        self.G, self.D = self.model.G, self.model.D
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment = DiffAugment(config.augment)
        # Lazy regularisation (StyleGAN2 Appendix B): R1 every k steps, D's Adam rescaled by k / (k + 1).
        ratio = self._lazy_r1_ratio()
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.lr_d * ratio, betas=(0.0, 0.99**ratio),
                                      eps=1e-8)
        self.iteration = 0
        if state is not None:
            self._load(state)

    def _lazy_r1_ratio(self) -> float:
        """k / (k + 1) for R1 every k steps: D's Adam rate and beta2 exponent."""
        return self.config.r1_interval / (self.config.r1_interval + 1)

    # ----- one iteration ---------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(labels, self.c_dim).float()

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.reals), (self.config.batch,), device=self.device)
        return self.reals[idx], self._one_hot(self.labels[idx])

    def _fake_classes(self) -> torch.Tensor:
        """Classes drawn with the training set's frequencies (as the official loop does)."""
        idx = torch.randint(0, len(self.labels), (self.config.batch,), device=self.device)
        return self._one_hot(self.labels[idx])

    def _generate(self, c: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        z = torch.randn(c.shape[0], self.config.z_dim, device=self.device)
        # The mapping stays float32 under autocast: it is tiny, and its w_avg tracker is a float32 buffer.
        with torch.autocast(self.device.type, enabled=False):
            ws = self.G.mapping(z, c, update_emas=update_emas)
            if self.config.style_mixing_prob > 0 and torch.rand([]).item() < self.config.style_mixing_prob:
                cutoff = int(torch.randint(1, ws.shape[1], []).item())
                z2 = torch.randn_like(z)
                ws = torch.cat([ws[:, :cutoff], self.G.mapping(z2, c)[:, cutoff:]], dim=1)
        return self.G.synthesis(ws, noise_mode="random")

    def step(self) -> dict[str, float]:
        """One discriminator update (with R1 every ``r1_interval`` steps) then one generator update."""
        cfg = self.config
        stats: dict[str, float] = {}

        self.D.requires_grad_(True)
        real, c_real = self._real_batch()
        c_fake = self._fake_classes()
        do_r1 = self.iteration % cfg.r1_interval == 0
        with self._autocast():
            with torch.no_grad():
                fake = self._generate(c_fake, update_emas=True)
            if do_r1:
                penalty, real_logits = r1_penalty(lambda x, c: self.D(self.augment(x), c), real, c_real)
                penalty = penalty.float()
            else:
                real_logits = self.D(self.augment(real), c_real)
            fake_logits = self.D(self.augment(fake), c_fake)
        loss_D = discriminator_loss(real_logits.float(), fake_logits.float())
        total_D = loss_D + (penalty.mean() * (cfg.r1_gamma / 2) * cfg.r1_interval if do_r1 else 0.0)
        self.opt_D.zero_grad(set_to_none=True)
        total_D.backward()
        self.opt_D.step()
        stats.update(loss_D=loss_D.item(), real_logit=real_logits.mean().item(),
                     fake_logit=fake_logits.mean().item())
        if do_r1:
            stats["r1"] = penalty.mean().item()

        self.D.requires_grad_(False)
        c_fake = self._fake_classes()
        with self._autocast():
            fake_logits = self.D(self.augment(self._generate(c_fake)), c_fake)
        loss_G = generator_loss(fake_logits.float())
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        stats["loss_G"] = loss_G.item()

        self.iteration += 1
        stats["ema_beta"] = self._update_ema()
        if not all(math.isfinite(v) for v in stats.values()):
            raise TrainingDiverged(f"non-finite losses at iteration {self.iteration}: {stats}")
        return stats

    @torch.no_grad()
    def _update_ema(self) -> float:
        cfg = self.config
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup > 0:
            ema_nimg = min(ema_nimg, self.iteration * cfg.batch * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
        return beta

    # ----- outputs ----------------------------------------------------------------------------
    def ema_prior(self) -> StyleGAN2Prior:
        """The EMA generator with the current discriminator, as the package's prior class (CPU, eval)."""
        prior = StyleGAN2Prior(**self.prior_kwargs)
        prior.G.load_state_dict(self.G_ema.state_dict())
        prior.D.load_state_dict(self.D.state_dict())
        return prior.eval()

    @torch.no_grad()
    def sample_sheet(self, columns: int = 12) -> torch.Tensor:
        """``[classes * columns, 3, R, R]`` EMA samples, one row per class, fixed latents per column."""
        g = torch.Generator().manual_seed(SAMPLE_SEED)
        z = torch.randn(columns, self.config.z_dim, generator=g).to(self.device)
        rows = []
        for k in range(self.c_dim):
            c = self._one_hot(torch.full((columns,), k, device=self.device))
            rows.append(self.G_ema(z, c, noise_mode="const"))
        return torch.cat(rows).cpu()

    def real_sheet(self, columns: int = 12) -> torch.Tensor:
        g = torch.Generator().manual_seed(SAMPLE_SEED)
        labels = self.labels.cpu()
        rows = []
        for k in range(self.c_dim):
            idx = torch.nonzero(labels == k).flatten()
            rows.append(self.reals[idx[torch.randint(0, len(idx), (columns,), generator=g)].to(self.device)].cpu())
        return torch.cat(rows)

    # ----- (de)serialisation ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "config": asdict(self.config),
            "prior_config": self.model.config(),
            "classes": list(self.classes),
            "resolution": self.resolution,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng_cpu": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT!r}")
        if tuple(state["classes"]) != tuple(self.classes) or state["resolution"] != self.resolution:
            raise CheckpointError(
                f"checkpoint was trained on {state['resolution']} px with classes {state['classes']}; "
                f"the data given is {self.resolution} px with classes {list(self.classes)}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        for optimizer, lr in ((self.opt_G, self.config.lr_g), (self.opt_D, self.config.lr_d * self._lazy_r1_ratio())):
            for group in optimizer.param_groups:  # the config's rate (a resume may change it), not the stored one
                group["lr"] = lr
        self.iteration = int(state["iteration"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)


# ----- the run ------------------------------------------------------------------------------------
def save_sheet(images: torch.Tensor, columns: int, path: Path, min_tile: int = 64) -> None:
    """Save a grid of ``[-1, 1]`` images (white 1-px gaps), enlarged (nearest) so small tiles stay visible."""
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    tiles = images.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
    grid = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = tile
    scale = max(1, math.ceil(min_tile / h))
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    img.save(tmp)
    tmp.replace(path)


class _StopFlag:
    """Turns SIGTERM/SIGINT into a clean stop at the next iteration (so the last checkpoint is saved)."""

    def __init__(self) -> None:
        self.stop = False
        self._previous = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: rely on the time / iteration limits
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(
    data_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = True,
    device: str = "cpu",
    max_minutes: float | None = None,
    max_iters: int | None = None,
    ckpt_minutes: float = 5.0,
    sample_every: int = 500,
    log_every: int = 20,
    snapshot_every: int = 10000,
    init_from: str | Path | None = None,
    init_iteration: int | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Trainer:
    """Train (or continue training) until ``max_minutes`` / ``max_iters`` or a signal; checkpoint on exit.

    ``max_iters`` counts total iterations of the run (a resumed run stops at the same total).
    Refuses to start over an existing run unless ``resume`` is set. ``init_from`` warm-starts a *new*
    run from a native prior file (its EMA generator becomes G and G_ema, its D is kept; fresh Adam
    moments), which is how training continues from the shipped asset when no ``ckpt.pt`` is at hand.
    ``precision`` / ``channels_last``: see :class:`Trainer` (runtime choices, free to change on resume).
    ``overrides`` (resume only): :data:`RESUME_OVERRIDES` fields that replace the run's stored ones, a
    late-phase schedule (e.g. a lower learning rate once FID levels off); the change goes to the log.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "ckpt.pt"
    data = load_emoji_npz(data_path, "train")
    changes: dict[str, Any] = {}
    if ckpt_path.exists():
        if not resume:
            raise CheckpointError(f"{ckpt_path} exists: pass resume=True (--resume) or choose another output folder")
        state = load_checkpoint(ckpt_path)
        stored = TrainConfig.from_dict(state["config"])
        changes = {k: v for k, v in (overrides or {}).items() if getattr(stored, k) != v}
        if set(changes) - set(RESUME_OVERRIDES):
            raise ValueError(f"a resumed run can change only {', '.join(RESUME_OVERRIDES)}; got {sorted(changes)}")
        if changes:
            tqdm.write("resuming with " + ", ".join(f"{k} {getattr(stored, k)} -> {v}" for k, v in changes.items()))
            stored = replace(stored, **changes)
        elif stored != config:
            tqdm.write(f"resuming with the run's stored config (ignoring the one given): {stored}")
        trainer = Trainer(stored, data, device, state, precision=precision, channels_last=channels_last)
    else:
        trainer = Trainer(config, data, device, precision=precision, channels_last=channels_last)
        if init_from is not None:
            warm_start(trainer, init_from, init_iteration)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_sheet(trainer.real_sheet(), 12, out_dir / "reals.png")
        (out_dir / "config.json").write_text(json.dumps(
            {"train": asdict(config), "prior": trainer.model.config(), "data": str(data_path),
             "train_images": len(data)}, indent=2))

    def checkpoint() -> None:
        save_checkpoint(trainer.state_dict(), ckpt_path)
        _save_prior(trainer, out_dir / "prior.safetensors", data_path)

    start = last_ckpt = time.monotonic()
    window: list[dict[str, float]] = []
    window_start = time.monotonic()
    total = max_iters if max_iters is not None else None
    with _StopFlag() as flag, tqdm(total=total, initial=trainer.iteration, unit="it", dynamic_ncols=True,
                                   mininterval=10) as bar, open(out_dir / "log.jsonl", "a") as log:
        if changes:
            log.write(json.dumps({"iter": trainer.iteration, "event": "resume-overrides", **changes}) + "\n")
        while not flag.stop:
            if max_iters is not None and trainer.iteration >= max_iters:
                break
            if max_minutes is not None and time.monotonic() - start >= max_minutes * 60:
                break
            window.append(trainer.step())
            bar.update(1)
            it = trainer.iteration
            if it % log_every == 0:
                now = time.monotonic()
                record = {"iter": it, "kimg": it * trainer.config.batch / 1000,
                          "s_per_it": (now - window_start) / len(window), "time": time.time()}
                for key in dict.fromkeys(k for w in window for k in w):  # r1 is only in some steps
                    values = [w[key] for w in window if key in w]
                    record[key] = sum(values) / len(values)
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(D=f"{record['loss_D']:.3f}", G=f"{record['loss_G']:.3f}",
                                s_it=f"{record['s_per_it']:.2f}")
                window, window_start = [], now
            if it % sample_every == 0:
                save_sheet(trainer.sample_sheet(), 12, out_dir / "samples" / f"{it:07d}.png")
            if snapshot_every and it % snapshot_every == 0:
                save_checkpoint(trainer.state_dict(), out_dir / "snapshots" / f"ckpt-{it:07d}.pt")
            if time.monotonic() - last_ckpt >= ckpt_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
    checkpoint()
    save_sheet(trainer.sample_sheet(), 12, out_dir / "samples" / "latest.png")
    return trainer


def warm_start(trainer: Trainer, prior_path: str | Path, iteration: int | None = None) -> None:
    """Load G (as G and G_ema) and D from a native prior whose architecture matches the run's config.

    The iteration counter continues from ``iteration``, else from the file's recorded source iteration.
    """
    from ganprior.loading.native import load_native, read_native_metadata

    prior = load_native(prior_path)
    if prior.config() != trainer.model.config():
        raise CheckpointError(f"{prior_path} has another architecture than this run's config; "
                              "train with the hyper-parameters it was trained with")
    trainer.G.load_state_dict(prior.G.state_dict())
    trainer.G_ema.load_state_dict(prior.G.state_dict())
    trainer.D.load_state_dict(prior.D.state_dict())
    if iteration is None:
        source = read_native_metadata(prior_path).get("source") or {}
        iteration = int(source.get("iteration", 0)) if isinstance(source, dict) else 0
    trainer.iteration = iteration


def _save_prior(trainer: Trainer, path: Path, data_path: str | Path) -> None:
    """Export the EMA generator in the package's native format (when that module is installed)."""
    try:
        from ganprior.loading.native import save_native
    except ImportError:
        return
    save_native(trainer.ema_prior(), path,
                source={"trained_by": "ganprior train", "iteration": trainer.iteration,
                        "kimg": trainer.iteration * trainer.config.batch / 1000, "data": Path(data_path).name,
                        "classes": list(trainer.classes)})
