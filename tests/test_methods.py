"""Restoration methods on a tiny fixed StyleGAN2: they must actually restore.

The generator is random but fixed (seeded), its output squashed by tanh so that, like a trained
model, it stays inside [-1, 1]. A clean image is generated from a known latent, degraded, restored,
and the error *where the information is missing* is compared with what the degraded input alone
gives: hole pixels vs the mean observed colour, chroma vs the grey input's zero chroma, high
frequencies vs the bicubic upsample of the low-resolution input.
"""

from __future__ import annotations

import math

import pytest
import torch

import ganprior
from ganprior.degradations import parse_task, resize, to_gray
from ganprior.losses import (
    PerceptualDistance,
    PerceptualFallbackWarning,
    PerceptualUnavailableError,
    get_perceptual,
    register_perceptual,
)
from ganprior.methods import NonFiniteLossError, get_method_class
from ganprior.methods import centroids as centroids_module
from ganprior.methods.projection import mean_w
from ganprior.models.stylegan2 import StyleGAN2Prior

STEPS = {"cri": dict(offset_steps=80, tuning_steps=10, n_samples=300),
         "wplus": dict(steps=80, n_samples=300, w_avg_samples=300),
         "pti": dict(projection_steps=80, tuning_steps=10, n_samples=300, w_avg_samples=300)}


class BoundedStyleGAN2(StyleGAN2Prior):
    """A random StyleGAN2 whose images stay in [-1, 1], as a trained generator's do."""

    def synthesis(self, ws, c=None, noise_mode="const", fused_modconv=None):
        return torch.tanh(super().synthesis(ws, c, noise_mode, fused_modconv))


def tiny_prior(c_dim: int = 0, w_dim: int = 8, discriminator: bool = False) -> BoundedStyleGAN2:
    torch.manual_seed(0)
    d = dict(c_dim=c_dim, img_resolution=32, channel_base=256, channel_max=32) if discriminator else None
    return BoundedStyleGAN2(dict(z_dim=w_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=32,
                                 mapping_kwargs=dict(num_layers=2),
                                 synthesis_kwargs=dict(channel_base=256, channel_max=32)), d).eval()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def prior() -> BoundedStyleGAN2:
    return tiny_prior()


@pytest.fixture(scope="module")
def clean(prior) -> torch.Tensor:
    z = torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return prior.synthesis(prior.mapping(z))


def _high_pass(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    low = resize(resize(x, (x.shape[-2] // factor, x.shape[-1] // factor)), x.shape[-2:])
    return x - low


def _missing_part_errors(task: str, clean: torch.Tensor, y: torch.Tensor, deg, restored: torch.Tensor):
    """(error of the restoration, error of the best guess from the degraded input alone) on what is missing."""
    if task == "inpaint":
        mask = deg.ops[0].mask
        hole = (1 - mask).expand_as(clean)
        observed_mean = (y * mask).sum((2, 3), keepdim=True) / mask.sum()
        baseline = observed_mean.expand_as(clean)
        err = lambda x: float(((x - clean).square() * hole).sum() / hole.sum())  # noqa: E731
        return err(restored), err(baseline)
    if task == "colorize":
        chroma = lambda x: x - to_gray(x)  # noqa: E731 (the grey input has zero chroma)
        err = lambda x: float((chroma(x) - chroma(clean)).square().mean())  # noqa: E731
        return err(restored), err(y)
    bicubic = resize(y, clean.shape[-2:])
    err = lambda x: float((_high_pass(x) - _high_pass(clean)).square().mean())  # noqa: E731
    return err(restored), err(bicubic)


@pytest.mark.parametrize("task", ["inpaint", "colorize", "sr4"])
@pytest.mark.parametrize("method", ["cri", "wplus", "pti"])
def test_restoration_beats_the_degraded_input_where_information_is_missing(prior, clean, task, method):
    mask = "center" if task == "inpaint" else None
    deg = parse_task(task, mask=mask, image_size=clean.shape[-2:])
    y = deg(clean).clamp(-1, 1)  # an observation file holds in-range values (bicubic overshoots)
    result = ganprior.restore(y, task=task, method=method, model=prior, mask=mask, perceptual="mse",
                              progress=False, options=STEPS[method])
    assert result.image.shape == clean.shape and result.stopped is None
    restored_err, degraded_err = _missing_part_errors(task, clean, y, deg, result.generator_output)
    print(f"{method} {task}: restored {restored_err:.5f} vs degraded-input baseline {degraded_err:.5f}")
    assert degraded_err > 1e-3  # the task really removed information
    assert restored_err < 0.6 * degraded_err


@pytest.mark.parametrize("method", ["cri", "wplus", "pti"])
def test_discriminator_perceptual_on_sr_compares_upsampled_images_and_restores(clean, method):
    """×4 SR at 32² observes 8² images, which a 32² discriminator cannot take: the perceptual term
    compares both degraded images bilinearly upsampled to 32², the MSE stays at 8²."""
    prior = tiny_prior(discriminator=True)
    deg = parse_task("sr4")
    y = deg(clean).clamp(-1, 1)
    seen: list[tuple[int, ...]] = []
    features = prior.discriminator_features

    def spy(img, c=None, **options):
        seen.append(tuple(img.shape[-2:]))
        return features(img, c, **options)

    prior.discriminator_features = spy
    result = ganprior.restore(y, task="sr4", method=method, model=prior, perceptual="discriminator",
                              progress=False, options=STEPS[method])
    assert seen and set(seen) == {(32, 32)}
    assert result.stopped is None and "perceptual" in result.losses[-1]
    restored_err, degraded_err = _missing_part_errors("sr4", clean, y, deg, result.generator_output)
    print(f"{method} sr4 discriminator: restored {restored_err:.5f} vs bicubic {degraded_err:.5f}")
    assert restored_err < 0.6 * degraded_err


def test_perceptual_view_upsamples_only_what_the_network_cannot_take():
    class Needs16(PerceptualDistance):
        name, min_size = "needs-16", 16

        def forward(self, a, b):
            assert min(a.shape[-2:]) >= 16 and a.shape == b.shape
            return (a - b).square().flatten(1).mean(1)

    from ganprior.methods import ReconstructionLoss

    img = torch.rand(2, 3, 32, 32) * 2 - 1
    sr = parse_task("sr4")
    loss = ReconstructionLoss(Needs16(), sr, sr(img[:1]), l2_weight=1.0)
    terms = loss.terms(img)
    up = lambda x: torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)  # noqa: E731
    expected = (up(sr(img)) - up(sr(img[:1]))).square().flatten(1).mean(1)
    assert torch.allclose(terms["perceptual"], expected)
    assert torch.allclose(terms["l2"], (sr(img) - sr(img[:1])).square().flatten(1).mean(1))
    gray = parse_task("colorize")
    same_size = ReconstructionLoss(Needs16(), gray, gray(img[:1]))  # 32² observation: compared as is
    assert float(same_size.terms(img[:1])["perceptual"]) == 0.0
    with pytest.raises(PerceptualUnavailableError, match="at least 16 px"):
        loss.terms(img[:, :, :8, :8])


def test_discriminator_distance_does_not_mix_a_batch_through_minibatch_std():
    prior = tiny_prior(discriminator=True)  # SG2 D: minibatch-std over groups of 4
    distance = get_perceptual("discriminator", prior)
    a, b = torch.rand(2, 4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        together = distance(a, b)
        alone = torch.cat([distance(a[i:i + 1], b[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6) and bool((together > 0).all())


def _fake_nvidia_vgg16(path) -> None:
    """A TorchScript stand-in with the call convention of NVIDIA's vgg16.pt (pixels as the embedding)."""

    class FakeVGG(torch.nn.Module):
        def forward(self, x: torch.Tensor, resize_images: bool = False, return_lpips: bool = False) -> torch.Tensor:
            return x.flatten(1) / 255

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(FakeVGG()), str(path))


@pytest.fixture
def no_downloads(monkeypatch):
    import pooch

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be downloaded in offline mode")

    monkeypatch.setenv("GANPRIOR_OFFLINE", "1")
    monkeypatch.setattr(pooch, "retrieve", refuse)


def test_auto_perceptual_order_shipped_net_then_vgg_then_discriminator(no_downloads):
    from ganprior.losses import cache_dir

    with_d = tiny_prior(discriminator=True)
    shipped = tiny_prior(discriminator=True)
    object.__setattr__(shipped, "feature_net", lambda_net(torch.nn.Conv2d(3, 4, 3, padding=1)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", PerceptualFallbackWarning)  # the first two choices are silent
        assert get_perceptual("auto", shipped).name == "feature-net"  # even with D (and later with vgg16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation notice
            _fake_nvidia_vgg16(cache_dir() / "networks" / "vgg16.pt")
        assert get_perceptual("auto", with_d).name == "nvidia-vgg16"
        assert get_perceptual("auto", shipped).name == "feature-net"
    (cache_dir() / "networks" / "vgg16.pt").unlink()
    with pytest.warns(PerceptualFallbackWarning, match="discriminator because nvidia-vgg16 is unavailable"):
        assert get_perceptual("auto", with_d).name == "discriminator"
    with pytest.raises(PerceptualUnavailableError, match="no feature network and has no discriminator"):
        get_perceptual("auto", tiny_prior())


def test_perceptual_actually_used_is_recorded_in_run_json(clean, no_downloads, tmp_path):
    import json

    from ganprior.results import RUN_FILE

    prior = tiny_prior(discriminator=True)
    y = parse_task("colorize")(clean)
    with pytest.warns(PerceptualFallbackWarning):
        result = ganprior.restore(y, task="colorize", method="wplus", model=prior, progress=False,
                                  options=dict(steps=3, n_samples=50, w_avg_samples=50))
    assert result.config["options"]["perceptual"] == "auto"
    run = json.loads((result.save(tmp_path / "run") / RUN_FILE).read_text())
    assert run["config"]["perceptual"] == run["extras"]["perceptual"] == "discriminator"
    explicit = ganprior.restore(y, task="colorize", method="wplus", model=prior, progress=False, perceptual="mse",
                                options=dict(steps=3, n_samples=50, w_avg_samples=50))
    assert explicit.config["perceptual"] == "mse"


def test_cri_centroid_start_is_closer_than_w_avg(prior):
    """Measured over several targets: the nearest of 10 k-means centres beats the single average
    latent as a starting point (not for every image: a target near the mean is best served by it)."""
    deg = parse_task("sr4")
    cri = get_method_class("cri")(offset_steps=0, tuning_steps=0, n_samples=500, perceptual="mse")
    ratios = []
    for seed in range(100, 108):
        z = torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            target = deg(prior.synthesis(prior.mapping(z)))
        extras = cri.run(prior, deg, target, progress=False).extras
        assert len(extras["centroid_scores"]) == 10
        assert extras["start_loss"] == min(extras["centroid_scores"])
        ratios.append(extras["start_loss"] / extras["w_avg_loss"])
    print("centroid start / w_avg start distance:", [round(r, 3) for r in ratios])
    assert sum(r < 1 for r in ratios) >= 6
    assert sum(ratios) / len(ratios) < 0.8


def test_a_one_cluster_bank_is_the_class_mean_so_cri_can_be_ablated_to_a_w_avg_start():
    """The embedded model's CRI ablation ('cri-wavg' = n_clusters 1) relies on this."""
    prior = tiny_prior(c_dim=3)
    c = prior.class_matrix(2, 1)
    bank = centroids_module.centroid_bank(prior, 2, n_clusters=1, n_samples=300, seed=5)
    assert torch.allclose(bank[0], mean_w(prior, c, 300, 5)[0, 0], atol=1e-5)
    target = prior.synthesis(prior.mapping(torch.randn(1, prior.z_dim), c)).detach()
    cri = get_method_class("cri")(offset_steps=0, tuning_steps=0, n_clusters=1, n_samples=300, perceptual="mse")
    extras = cri.run(prior, parse_task("sr4"), parse_task("sr4")(target), class_index=2, seed=5,
                     progress=False).extras
    assert extras["start_loss"] == pytest.approx(extras["w_avg_loss"], rel=1e-4)


def test_centroid_bank_is_cached_on_disk(monkeypatch):
    prior = tiny_prior(c_dim=3)
    fits = []

    class CountingKMeans(centroids_module.KMeans):
        def fit(self, *args, **kwargs):
            fits.append(self.n_clusters)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(centroids_module, "KMeans", CountingKMeans)
    first = centroids_module.centroid_bank(prior, 1, n_clusters=4, n_samples=200, seed=3)
    second = centroids_module.centroid_bank(prior, 1, n_clusters=4, n_samples=200, seed=3)
    assert fits == [4] and torch.equal(first, second)
    centroids_module.centroid_bank(prior, 2, n_clusters=4, n_samples=200, seed=3)  # another class: new bank
    assert fits == [4, 4]


def test_class_is_estimated_by_centroid_search_and_reported(monkeypatch):
    prior = tiny_prior(c_dim=3)
    z = torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        clean = prior.synthesis(prior.mapping(z, prior.class_matrix(2, 1)))
    deg = parse_task("colorize")
    cri = get_method_class("cri")(offset_steps=0, tuning_steps=0, n_samples=200, n_clusters=4, perceptual="mse")
    result = cri.run(prior, deg, deg(clean), progress=False)
    assert result.class_source == "centroid-search"
    assert result.class_index in (0, 1, 2) and math.isfinite(result.class_score)
    assert len(result.extras["class_candidates"]) == 3


def test_class_out_of_range_is_one_clear_error():
    prior = tiny_prior(c_dim=3)
    deg = parse_task("colorize")
    with pytest.raises(ValueError, match="out of range"):
        get_method_class("wplus")(steps=1, perceptual="mse").run(prior, deg, torch.zeros(1, 3, 32, 32), class_index=7)


def test_same_seed_same_result(prior, clean):
    deg = parse_task("sr4")
    runs = [get_method_class("cri")(offset_steps=5, tuning_steps=3, n_samples=200, perceptual="mse")
            .run(prior, deg, deg(clean), seed=11, progress=False) for _ in range(2)]
    assert torch.equal(runs[0].latent, runs[1].latent) and torch.equal(runs[0].image, runs[1].image)
    assert runs[0].generator_delta and all(torch.equal(runs[0].generator_delta[k], runs[1].generator_delta[k])
                                           for k in runs[0].generator_delta)


class NaNAfter(PerceptualDistance):
    """MSE that turns into NaN after a few calls (a diverging loss)."""

    name = "nan-after"

    def __init__(self, calls: int = 6) -> None:
        super().__init__()
        self.left = calls

    def forward(self, a, b):
        self.left -= 1
        d = (a - b).square().flatten(1).mean(1)
        return d if self.left >= 0 else d * float("nan")


def test_non_finite_loss_stops_and_keeps_the_best_so_far(prior, clean):
    register_perceptual("nan-after", NaNAfter)
    deg = parse_task("colorize")
    result = get_method_class("wplus")(steps=50, n_samples=200, w_avg_samples=200, perceptual="nan-after").run(
        prior, deg, deg(clean), progress=False)
    assert result.stopped and "non-finite" in result.stopped
    assert torch.isfinite(result.image).all() and torch.isfinite(result.latent).all()
    logged = [entry["loss"] for entry in result.losses]
    assert len(logged) < 50
    with torch.no_grad():  # the kept latent is the one with the lowest logged loss
        kept = deg(prior.synthesis(result.latent)).sub(deg(clean)).square().mean()
    assert float(kept) == pytest.approx(min(logged), rel=1e-4)
    with pytest.raises(NonFiniteLossError):
        result.raise_if_stopped()


def test_pulse_keeps_latent_on_sphere_and_runs(prior, clean):
    deg = parse_task("sr4")
    result = get_method_class("pulse")(steps=10, fit_samples=200).run(prior, deg, deg(clean), progress=False)
    assert torch.isfinite(result.image).all() and result.stopped is None
    assert {"l2", "geocross"} <= set(result.losses[-1])


def test_unknown_method_and_option_are_clear_errors():
    with pytest.raises(ValueError, match="unknown method"):
        get_method_class("nope")
    with pytest.raises(ValueError, match="no option"):
        get_method_class("cri")(offset_stpes=3)


def test_perceptual_registry_errors_are_clear(prior, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown perceptual"):
        get_perceptual("nope")
    with pytest.raises(PerceptualUnavailableError, match="discriminator"):
        get_perceptual("discriminator", prior)
    with pytest.raises(PerceptualUnavailableError, match="feature"):
        get_perceptual("feature-net", prior)
    import pooch

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(PerceptualUnavailableError, match="vgg16.pt.*nvlabs"):
        get_perceptual("nvidia-vgg16")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(PerceptualUnavailableError, match="lpips|vgg16-397923af"):
        get_perceptual("lpips-vgg")


def test_feature_net_distance_uses_any_feature_network():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    distance = get_perceptual("feature-net", None, net=lambda_net(net))
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    d = distance(a, b)
    assert d.shape == (2,) and bool((d > 0).all()) and float(distance(a, a).abs().max()) == 0.0


def lambda_net(conv: torch.nn.Module) -> torch.nn.Module:
    class TwoTaps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            f = self.conv(x)
            return [f, torch.nn.functional.avg_pool2d(f, 2)]

    return TwoTaps()
