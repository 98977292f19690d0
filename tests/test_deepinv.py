"""ganprior.deepinv: deepinv physics in, the native ganprior path out (identical), a generic path for the rest,
exact conversions both ways, and the runnable example (issue 26)."""

from __future__ import annotations

import runpy
import warnings
from pathlib import Path

import pytest
import torch

dinv = pytest.importorskip("deepinv", reason="the deepinv extra (pip install 'ganprior[deepinv]')")

import ganprior  # noqa: E402
from ganprior.api import load_prior  # noqa: E402
from ganprior.degradations import (Blur, Colorization, Compose, Denoising, Inpainting, SuperResolution,  # noqa: E402
                                   blur_kernel)
from ganprior.deepinv import (DeepinvMappingError, FilterOperator, GANPrior, from_deepinv, operator_gap,  # noqa: E402
                              to_deepinv)
from ganprior.deepinv.convert import MAPPED_WITHIN  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "deepinv_restore.py"
SIZE = (3, 32, 32)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():  # deepinv's deprecation notes, ganprior's restoration notes
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def prior():
    return load_prior("emoji32")


@pytest.fixture(scope="module")
def emoji():
    from ganprior.data.emoji import load_emoji_test

    return torch.from_numpy(load_emoji_test(32).images[:1]).permute(0, 3, 1, 2).float() / 255.0


def _mask(seed: int = 0) -> torch.Tensor:
    return (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) > 0.4).float()


def _gauss(sigma: float) -> torch.Tensor:
    taps = blur_kernel("gaussian", sigma).float()
    return torch.outer(taps, taps)[None, None]


def _physics(name: str):
    p = dinv.physics
    if name == "inpaint":
        return p.Inpainting(img_size=SIZE, mask=_mask())
    if name == "decolorize":
        return p.Decolorize()
    if name == "downsampling":
        return p.Downsampling(filter="bicubic", factor=2, padding="circular", img_size=SIZE)
    if name == "blur":  # ganprior's own Gaussian with its reflect padding
        return p.Blur(filter=_gauss(1.0), padding="reflect")
    if name == "blurfft":
        return p.BlurFFT(img_size=SIZE, filter=p.functional.gaussian_blur(sigma=1.5))
    if name == "inpaint*decolorize":  # decolorize first, then holes in the grey image
        return p.Inpainting(img_size=(1, 32, 32), mask=_mask(1)) * p.Decolorize()
    if name == "decolorize*downsampling":
        return p.Decolorize() * p.Downsampling(filter="gaussian", factor=2, padding="reflect", img_size=SIZE)
    raise KeyError(name)


def _native_task(name: str, physics):
    """What a ganprior user would write for the same operator, built without from_deepinv."""
    if name == "inpaint":
        return "inpaint", {"mask": _mask()}
    if name == "decolorize":
        return "colorize", {}
    if name == "downsampling":
        return FilterOperator(physics.filter[0, 0], 2, "circular"), {}
    if name == "blur":  # the noise level is known (none): ganprior's Blur is told so
        return Blur(1.0, fusion="project", noise_sigma=0.0), {}
    if name == "blurfft":
        return FilterOperator(physics.filter[0, 0], 1, "circular", "blurfft"), {}
    if name == "inpaint*decolorize":
        return "colorize+inpaint", {"mask": _mask(1)}
    downsample = physics.physics_list[0]
    return Compose([FilterOperator(downsample.filter[0, 0], 2, "reflect"), Colorization()]), {}


MAPPED = ["inpaint", "decolorize", "downsampling", "blur", "blurfft", "inpaint*decolorize", "decolorize*downsampling"]


@pytest.mark.parametrize("name", MAPPED)
def test_mapped_operator_equals_deepinv(name):
    physics = _physics(name)
    gap = operator_gap(physics, from_deepinv(physics), SIZE)
    assert gap <= MAPPED_WITHIN["Decolorize"] if "decolorize" in name else gap <= 2e-6, gap


#: CRI on one case, W+ on the others; a given class and small latent samples keep each run well under a second
RESTORED = [("inpaint", "cri"), ("decolorize", "wplus"), ("downsampling", "wplus"), ("blur", "wplus"),
            ("blurfft", "wplus"), ("inpaint*decolorize", "wplus")]
QUICK = {"cri": {"n_samples": 64, "n_clusters": 4, "cache": False, "compare_w_avg": False},
         "wplus": {"w_avg_samples": 512}}


@pytest.mark.parametrize("name, method", RESTORED)
def test_deepinv_path_equals_native_restore(name, method, prior, emoji):
    """GANPrior(y, physics) == ganprior.restore on the same observation, on deepinv's scale (max diff <= 1e-6)."""
    physics = _physics(name)
    y = physics(emoji)
    model = GANPrior(method, prior, steps=1, class_index=0, **QUICK[method])
    out = model(y, physics)
    assert model.last_path == "native"
    assert out.shape == emoji.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    task, extra = _native_task(name, physics)
    obs = y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y
    native = ganprior.restore(obs, task=task, method=method, model=prior, steps=1, value_range=(0, 1), class_index=0,
                              options=QUICK[method], progress=False, **extra)
    diff = float((out - (native.image + 1) / 2).abs().max())
    assert diff <= 1e-6, diff


def test_generic_path_is_consistent_on_compressed_sensing(prior, emoji):
    """A random Gaussian CS operator ganprior lacks: optimised through A, fused with A_dagger so A(x) ~ y."""
    physics = dinv.physics.CompressedSensing(m=384, img_size=SIZE, channelwise=True,
                                             rng=torch.Generator().manual_seed(0))
    with pytest.raises(DeepinvMappingError, match="CompressedSensing"):
        from_deepinv(physics)
    y = physics(emoji)
    model = GANPrior("wplus", prior, steps=3, class_index=0, **QUICK["wplus"])
    out = model(y, physics)
    assert model.last_path.startswith("generic") and "CompressedSensing" in model.last_path
    assert out.shape == emoji.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    generator = (model.last_results[0].image + 1) / 2
    residual = float((physics.A(out) - y).norm() / y.norm())
    before = float((physics.A(generator) - y).norm() / y.norm())
    assert residual <= 1e-3 and residual < before / 20, (residual, before)


def test_noise_model_is_read_and_skips_fusion(prior, emoji):
    physics = _physics("inpaint")
    physics.set_noise_model(dinv.physics.GaussianNoise(sigma=0.05))
    ops = list(from_deepinv(physics).ops)
    assert isinstance(ops[-1], Denoising) and ops[-1].sigma == pytest.approx(0.1)  # ganprior's [-1, 1] scale
    y = physics(emoji)
    model = GANPrior("wplus", prior, steps=1, class_index=0, **QUICK["wplus"])
    out = model(y, physics)
    result = model.last_results[0]
    assert torch.equal(out, (result.generator_output + 1) / 2)  # noisy observed pixels are not pasted back
    assert not torch.equal(result.generator_output, result.image)


ROUND_TRIP_DEEPINV = ["inpaint", "decolorize", "downsampling", "blur", "blurfft", "inpaint*decolorize"]


@pytest.mark.parametrize("name", ROUND_TRIP_DEEPINV)
def test_round_trip_from_deepinv(name):
    physics = _physics(name)
    back = to_deepinv(from_deepinv(physics))
    x = torch.rand(2, *SIZE, generator=torch.Generator().manual_seed(3))
    assert float((back.A(x) - physics.A(x)).abs().max()) <= 1e-6


@pytest.mark.parametrize("op", [
    Inpainting(_mask()), Colorization(), Blur(2.0, fusion="project", noise_sigma=0.0),
    Blur(3, kind="box", fusion="project", noise_sigma=0.0),
    Compose([Blur(1.0, fusion="project", noise_sigma=0.2), Colorization(), Inpainting(_mask(2)), Denoising(0.2)]),
], ids=lambda op: op.name)
def test_round_trip_to_deepinv(op):
    physics = op.to_deepinv()
    back = from_deepinv(physics)
    assert [o.describe() for o in back.ops] == [o.describe() for o in getattr(op, "ops", [op])]
    x = torch.rand(1, *SIZE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    assert float((back(x) - op(x)).abs().max()) == 0.0


@pytest.mark.parametrize("make, words", [
    (lambda: SuperResolution(4).to_deepinv(), "Pillow"),
    (lambda: from_deepinv(dinv.physics.Blur(filter=_gauss(1.0))), "valid"),
    (lambda: from_deepinv(dinv.physics.Decolorize(srf="flat")), "srf"),
    (lambda: from_deepinv(dinv.physics.Inpainting(img_size=SIZE, mask=0.5, pixelwise=False)), "per channel"),
    (lambda: from_deepinv(dinv.physics.Inpainting(img_size=SIZE, mask=_mask(),
                                                  noise_model=dinv.physics.PoissonNoise())), "PoissonNoise"),
])
def test_unmapped_operators_say_why(make, words):
    with pytest.raises(DeepinvMappingError, match=words):
        make()


def test_example_restores_and_scores_with_deepinv_psnr(capsys):
    main = runpy.run_path(str(EXAMPLE), run_name="example")["main"]
    scores = main(["--method", "wplus", "--steps", "1", "--images", "1"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("sr2: 1 held-out emoji, deepinv PSNR (dB)")
    assert f"{scores['ganprior']:.2f}" in line and f"{scores['A_dagger']:.2f}" in line
    assert 10 < scores["ganprior"] < 60 and 10 < scores["A_dagger"] < 60


def test_missing_extra_says_how_to_install(monkeypatch):
    import sys

    from ganprior.deepinv.convert import require_deepinv

    monkeypatch.setitem(sys.modules, "deepinv", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"pip install 'ganprior\[deepinv\]'"):
        require_deepinv()


def test_stacked_physics_are_refused_in_one_line(prior):
    p = dinv.physics
    stacked = p.Inpainting(img_size=SIZE, mask=_mask()).stack(p.Decolorize())
    with pytest.raises(TypeError, match="stacked physics"):
        GANPrior("wplus", prior)(torch.zeros(1, 3, 32, 32), stacked)
    with pytest.raises(DeepinvMappingError, match="stacked"):
        from_deepinv(stacked)
