"""Degradation operators: definitions, fusion guarantees, composition, parsing, gradients."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganprior.degradations import (
    JPEG,
    Blur,
    Colorization,
    Compose,
    Degradation,
    DegradationError,
    Denoising,
    Inpainting,
    LambdaDegradation,
    MaskSpecError,
    SuperResolution,
    TaskError,
    box_mask,
    center_box_mask,
    compose,
    lab_to_rgb,
    mask_from_spec,
    parse_task,
    random_box_mask,
    random_pixel_mask,
    resize,
    rgb_to_lab,
    stroke_mask,
    to_gray,
)
from ganprior.images import MaskSizeError, from_uint8, save_image, to_uint8

H, W = 37, 53  # odd, non-square everywhere


def smooth_image(h: int = H, w: int = W, n: int = 1, seed: int = 0) -> torch.Tensor:
    """A colourful, natural-ish test image in [-1, 1] (smooth waves + a little texture)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6
    waves = torch.stack([torch.sin(6 * xx + 2 * yy), torch.cos(5 * yy - 3 * xx), torch.sin(9 * xx * yy)])
    return (0.75 * torch.sin(waves[None] * 2 + phase) + 0.1 * torch.randn(n, 3, h, w, generator=g)).clamp(-1, 1)


# ----- colorization --------------------------------------------------------------------------
def test_gray_uses_papers_coefficients_exactly():
    x = torch.zeros(1, 3, H, W, dtype=torch.float64)
    for c, weight in enumerate((0.2989, 0.5870, 0.1140)):
        unit = x.clone()
        unit[:, c] = 1.0
        y = Colorization()(unit)
        assert y.shape == (1, 3, H, W)
        assert torch.all(y == weight)
    x = smooth_image()
    expected = 0.2989 * x[:, 0] + 0.5870 * x[:, 1] + 0.1140 * x[:, 2]
    assert torch.allclose(to_gray(x)[:, 0], expected, atol=1e-6)


def test_lab_conversion_matches_skimage():
    skcolor = pytest.importorskip("skimage.color")
    rgb = (smooth_image().double() + 1) / 2
    ours = rgb_to_lab(rgb)[0].permute(1, 2, 0).numpy()
    ref = skcolor.rgb2lab(rgb[0].permute(1, 2, 0).numpy())
    assert np.abs(ours - ref).max() < 1e-9
    lab = rgb_to_lab(rgb)
    lab[:, 1:] *= 3.0  # push colours out of gamut so the clipping paths are exercised too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns when it clips negative Z
        ref_back = skcolor.lab2rgb(lab[0].permute(1, 2, 0).numpy())
    ours_back = lab_to_rgb(lab)
    assert (ours_back == 0).any() and (ours_back == 1).any()
    assert np.abs(ours_back[0].permute(1, 2, 0).numpy() - ref_back).max() < 1e-9


def test_colorization_default_fusion_reproduces_observed_gray_with_restored_chroma():
    truth, guess = smooth_image(seed=1), smooth_image(seed=2)  # guess: a wrong colour restoration
    op = Colorization()
    y = op(truth)
    fused = op.fuse(guess, y)
    assert fused.shape == truth.shape
    assert (op(fused) - y).abs().max() < 1e-4  # converted back to grey: the observation
    # chroma comes from the restoration: a desaturated guess stays grey, a perfect one is unchanged
    assert (op.fuse(truth, y) - truth).abs().max() < 1e-4
    ab_pale = rgb_to_lab((op.fuse(guess * 0.3, y).double() + 1) / 2)[:, 1:]
    assert torch.allclose(ab_pale, rgb_to_lab((guess.double() * 0.3 + 1) / 2)[:, 1:], atol=0.05)


def test_colorization_lab_fusion_keeps_lightness_of_gray_observation():
    truth, guess = smooth_image(seed=1), smooth_image(seed=2) * 0.3  # pale colours stay in gamut
    op = Colorization(fusion="lab")
    y = op(truth)
    fused = op.fuse(guess, y)
    l_fused = rgb_to_lab((fused.double() + 1) / 2)[:, 0]
    l_obs = rgb_to_lab((y.double() + 1) / 2)[:, 0]
    assert (l_fused - l_obs).abs().max() < 1e-3
    # Rec.601 grey is not CIE lightness, so grey is only approximately kept (measured mean 0.025)
    assert (op(fused) - y).abs().mean() < 0.05


def test_colorization_luma_fusion_reproduces_gray_exactly():
    truth, guess = smooth_image(seed=1), smooth_image(seed=3)
    op = Colorization(fusion="luma")
    y = op(truth)
    assert torch.allclose(op(op.fuse(guess, y)), y, atol=1e-5)
    assert torch.equal(Colorization(fusion="none").fuse(guess, y), guess)
    with pytest.raises(DegradationError, match="fusion"):
        Colorization(fusion="hsv")  # type: ignore[arg-type]


# ----- super-resolution ----------------------------------------------------------------------
@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize(
    "kernel,pil_filter", [("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS), ("area", Image.BOX)]
)
def test_sr_matches_pil_float_resize(factor, kernel, pil_filter):
    x = smooth_image()
    op = SuperResolution(factor, kernel)
    y = op(x)
    h, w = H // factor, W // factor
    assert y.shape == (1, 3, h, w) and op.observed_size((H, W)) == (h, w)
    for c in range(3):
        plane = Image.fromarray(x[0, c].numpy(), mode="F").resize((w, h), pil_filter)
        assert np.abs(np.asarray(plane) - y[0, c].numpy()).max() < 1e-5


def test_sr_bicubic_matches_torch_antialias_and_area_matches_avg_pool():
    x = smooth_image(64, 48)
    ref = F.interpolate(x, size=(16, 12), mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(SuperResolution(4, "bicubic")(x), ref, atol=1e-5)
    assert torch.allclose(SuperResolution(4, "area")(x), F.avg_pool2d(x, 4), atol=1e-6)
    x_odd = smooth_image()
    assert torch.allclose(resize(x_odd, (11, 7), "bicubic"),
                          F.interpolate(x_odd, size=(11, 7), mode="bicubic", antialias=True), atol=1e-5)


def test_dgp_lanczos2_kernel_and_shapes_follow_the_spec():
    taps = SuperResolution(4, "dgp-lanczos2").taps
    assert taps.numel() == 16
    spec_f4 = [-0.001065, -0.009752, -0.020384, -0.014878, 0.024594, 0.098658, 0.183115, 0.239711]
    assert np.allclose(taps.numpy(), spec_f4 + spec_f4[::-1], atol=1e-6)
    spec_f2 = [-0.008863, -0.041940, 0.116500, 0.434303]
    assert np.allclose(SuperResolution(2, "dgp-lanczos2").taps.numpy(), spec_f2 + spec_f2[::-1], atol=1e-6)
    x = smooth_image(128, 128)
    assert SuperResolution(4, "dgp-lanczos2")(x).shape == (1, 3, 32, 32)
    op = SuperResolution(4, "dgp-lanczos2", reupsample=True)
    y_model, y_target = op(x), op.degrade(x)
    assert y_model.shape == y_target.shape == (1, 3, 128, 128)
    # the model (Lanczos-2 conv) and DGP's target path (uint8 + PIL Lanczos-3) differ, but slightly
    assert 0 < (y_model - y_target).abs().mean() < 0.03
    assert SuperResolution(4, "dgp-lanczos2")(smooth_image()).shape == (1, 3, H // 4, W // 4)


def test_sr_lowpass_fusion_agrees_with_observation_and_none_is_identity():
    truth, guess = smooth_image(seed=1), smooth_image(seed=2)
    op = SuperResolution(2, "bicubic", fusion="lowpass")
    y = op(truth)
    fused = op.fuse(guess, y)
    assert fused.shape == truth.shape
    assert (op(fused) - y).abs().mean() < 0.5 * (op(guess) - y).abs().mean()
    assert torch.equal(SuperResolution(2).fuse(guess, y), guess)


def test_sr_rejects_bad_factors_and_kernels():
    for bad in (0, 2.5, True, "4"):
        with pytest.raises(DegradationError, match="factor"):
            SuperResolution(bad)  # type: ignore[arg-type]
    with pytest.raises(DegradationError, match="known: bicubic"):
        SuperResolution(2, "nearest")
    with pytest.raises(DegradationError, match="too small"):
        SuperResolution(64)(smooth_image())


# ----- inpainting and masks ------------------------------------------------------------------
@pytest.mark.parametrize(
    "mask",
    [
        center_box_mask((H, W)),
        box_mask("3,4,20,30", (H, W)),
        box_mask("0.1,0.2,0.5,0.9", (H, W)),
        random_box_mask((H, W), seed=3),
        stroke_mask((H, W), seed=5),
        random_pixel_mask((H, W), missing=0.7, seed=1),
    ],
)
def test_inpainting_fusion_keeps_every_observed_pixel_exactly(mask):
    truth, guess = smooth_image(n=2, seed=1), smooth_image(n=2, seed=2)
    op = Inpainting(mask)
    y = op(truth)
    observed = mask.bool().expand_as(truth)
    assert torch.all(y[~observed] == 0)
    fused = op.fuse(guess, y)
    assert torch.equal(fused[observed], truth[observed])
    assert torch.equal(fused[~observed], guess[~observed])
    assert torch.equal(op.valid_mask((H, W)), mask)


def test_mask_generators_follow_their_definitions():
    m = center_box_mask((128, 128))
    holes = (m[0, 0] == 0).nonzero()
    assert holes[:, 0].min() == 43 and holes[:, 0].max() == 84  # DGP: rows/cols 43..84 at 128 px
    assert int((center_box_mask((256, 256)) == 0).sum()) == 86 * 86
    assert int((random_pixel_mask((H, W), missing=0.3, seed=0) == 0).sum()) == round(0.3 * H * W)
    assert torch.equal(stroke_mask((H, W), seed=7), stroke_mask((H, W), seed=7))
    assert not torch.equal(stroke_mask((H, W), seed=7), stroke_mask((H, W), seed=8))
    assert 0.0 < float(1 - stroke_mask((H, W), seed=7).mean()) < 0.9
    b = box_mask("2,3,10,5", (H, W))
    assert int((b == 0).sum()) == 8 * 2 and b[0, 0, 3, 2] == 0 and b[0, 0, 5, 2] == 1
    assert torch.equal(mask_from_spec("box:2,3,10,5", (H, W)), b)
    assert torch.equal(mask_from_spec("2,3,10,5", (H, W)), b)
    for bad in ("box:1,2,3", "box:5,5,5,9", "box:a,b,c,d", "pixels:x", "blob"):
        with pytest.raises(MaskSpecError):
            mask_from_spec(bad, (H, W))


def test_mask_from_file_spec_needs_polarity(tmp_path):
    mask = box_mask("5,5,20,20", (H, W))
    save_image(mask, tmp_path / "m.png", value_range=(0, 1))  # white = observed, black = hole
    with pytest.raises(MaskSpecError, match="hole_value"):
        mask_from_spec(str(tmp_path / "m.png"), (H, W))
    assert torch.equal(mask_from_spec(str(tmp_path / "m.png"), (H, W), hole_value="black"), mask)
    with pytest.raises(MaskSizeError):
        mask_from_spec(str(tmp_path / "m.png"), (H + 1, W), hole_value="black")
    # through parse_task: a file mask after "sr2" is checked against the low-resolution size
    chain = parse_task("sr2+inpaint", mask=tmp_path / "m.png", mask_hole_value="black",
                       image_size=(2 * H, 2 * W), sr_kernel="dgp-lanczos2")
    assert torch.equal(chain[1].mask, mask)
    with pytest.raises(MaskSizeError):
        parse_task("sr2+inpaint", mask=tmp_path / "m.png", mask_hole_value="black",
                   image_size=(2 * H, 2 * W), sr_kernel="dgp-lanczos2", sr_reupsample=True)


def test_inpainting_rejects_bad_masks():
    with pytest.raises(DegradationError, match="binary"):
        Inpainting(torch.full((1, 1, H, W), 0.5))
    with pytest.raises(DegradationError, match=r"\[N, 1, H, W\]"):
        Inpainting(torch.ones(1, 3, H, W))
    with pytest.raises(DegradationError, match="mask is"):
        Inpainting(torch.ones(H, W))(smooth_image(H + 1, W))


# ----- noise, blur, JPEG ---------------------------------------------------------------------
def test_denoising_is_seeded_and_identity_in_the_model():
    x = smooth_image()
    op = Denoising(0.1, seed=4)
    assert torch.equal(op(x), x)
    y1, y2 = op.degrade(x), op.degrade(x)
    assert torch.equal(y1, y2)
    assert abs(float((y1 - x).std()) - 0.1) < 0.01
    assert not torch.equal(Denoising(0.1, seed=5).degrade(x), y1)


def test_blur_matches_its_kernel_and_keeps_size():
    x = smooth_image()
    op = Blur(1.5)
    y = op(x)
    assert y.shape == x.shape
    t = torch.arange(-5, 6, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / 1.5) ** 2)
    k = (k / k.sum()).float()
    k2 = (k[:, None] * k[None, :]).expand(3, 1, 11, 11)
    ref = F.conv2d(F.pad(x, (5, 5, 5, 5), mode="reflect"), k2, groups=3)
    assert torch.allclose(y, ref, atol=1e-5)
    box = Blur(3, "box")(x)
    assert torch.allclose(box[..., 5:-5, 5:-5], F.avg_pool2d(x, 3, stride=1)[..., 4:-4, 4:-4], atol=1e-6)
    assert torch.equal(op.fuse(x, y), x)


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_differentiable_jpeg_approximates_real_jpeg(quality):
    x = from_uint8(to_uint8(smooth_image()))
    op = JPEG(quality)
    model, real = op(x), op.degrade(x)
    assert model.shape == real.shape == x.shape
    psnr = lambda a, b: 10 * math.log10(4 / float(((a - b) ** 2).mean()))  # noqa: E731
    # measured: model vs libjpeg 42-46 dB, while compression itself costs 26-38 dB
    assert psnr(model, real) > 38
    assert psnr(model, real) > psnr(x, real) + 3


# ----- differentiability ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "op",
    [
        Colorization(),
        SuperResolution(3, "bicubic"),
        SuperResolution(4, "lanczos"),
        SuperResolution(2, "area"),
        SuperResolution(4, "dgp-lanczos2", reupsample=True),
        Inpainting(center_box_mask((H, W))),
        Blur(1.0),
        JPEG(50),
        JPEG(50, rounding="soft"),
    ],
    ids=lambda op: op.name + getattr(op, "rounding", ""),
)
def test_gradients_flow_through_forward(op):
    x = smooth_image().requires_grad_()
    op(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", ["lab-luma", "lab", "luma"])
def test_colorization_fusion_is_differentiable_in_the_restoration(fusion):
    x = smooth_image(seed=2).mul(0.5).requires_grad_()
    op = Colorization(fusion)
    op.fuse(x, op(smooth_image(seed=1))).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ----- composition ---------------------------------------------------------------------------
def test_compose_applies_in_order_and_flattens():
    x = smooth_image()
    sr, gray = SuperResolution(2), Colorization()
    mask = center_box_mask((H // 2, W // 2))
    inp = Inpainting(mask)
    chain = sr + gray + inp
    assert isinstance(chain, Compose) and len(chain) == 3 and chain.name == "sr2+colorize+inpaint"
    assert torch.equal(chain(x), inp(gray(sr(x))))
    assert torch.equal(compose(sr, gray, inp)(x), chain(x))
    assert chain.observed_size((H, W)) == (H // 2, W // 2)
    assert torch.equal(chain.valid_mask((H, W)), mask)
    assert torch.equal((gray + sr)(x), sr(gray(x)))
    assert [d["name"] for d in chain.describe()["ops"]] == ["sr2", "colorize", "inpaint"]


def test_compose_fuses_in_reverse_order():
    truth, guess = smooth_image(seed=1), smooth_image(seed=2)
    mask = box_mask("10,8,30,20", (H, W))
    gray, inp = Colorization(), Inpainting(mask)
    # colorize then inpaint: the observed grey pixels must survive, the holes get guess's grey
    chain = gray + inp
    y = chain(truth)
    fused = chain.fuse(guess, y)
    observed = mask.bool()[0, 0]
    assert torch.allclose(to_gray(fused)[0, 0][observed], y[0, 0][observed], atol=1e-5)
    assert torch.allclose(to_gray(fused)[0, 0][~observed], to_gray(guess)[0, 0][~observed], atol=1e-5)
    # inpaint then colorize: same guarantee, reached through the other order
    chain2 = inp + gray
    fused2 = chain2.fuse(guess, chain2(truth))
    assert torch.allclose(to_gray(fused2)[0, 0][observed], to_gray(truth)[0, 0][observed], atol=1e-5)
    assert torch.equal(fused2[..., ~observed], guess[..., ~observed])


def test_valid_mask_through_sr_after_inpainting_drops_mixed_pixels():
    mask = box_mask("4,4,10,10", (H, W))
    chain = Inpainting(mask) + SuperResolution(2)
    weight = chain.valid_mask((H, W))
    assert weight.shape == (1, 1, H // 2, W // 2)
    assert weight[0, 0, 2:5, 2:5].sum() == 0 and weight[0, 0, 0, 0] == 1 and weight[0, 0, -1, -1] == 1


def test_lambda_degradation_wraps_user_functions():
    x = smooth_image()
    op = LambdaDegradation(lambda t: t[..., ::2, ::2], name="stride2")
    assert op.observed_size((H, W)) == (19, 27)
    assert torch.equal((op + Colorization())(x), Colorization()(x[..., ::2, ::2]))
    fused = LambdaDegradation(lambda t: -t, fuse=lambda xr, y: -y).fuse(x, -x)
    assert torch.equal(fused, x)
    with pytest.raises(DegradationError, match="callable"):
        LambdaDegradation(3)  # type: ignore[arg-type]
    with pytest.raises(DegradationError, match="LambdaDegradation"):
        Compose([lambda t: t])  # type: ignore[list-item]
    assert isinstance(Compose([]), Degradation) and torch.equal(Compose([])(x), x)


# ----- parse_task ----------------------------------------------------------------------------
def test_parse_task_builds_the_chain_in_written_order():
    chain = parse_task("sr4+colorize+inpaint", mask="center", image_size=(H, W))
    assert [op.name for op in chain] == ["sr4", "colorize", "inpaint"]
    assert chain.name == "sr4+colorize+inpaint"
    assert chain.observed_size((H, W)) == (H // 4, W // 4)
    assert chain[2].mask.shape[-2:] == (H // 4, W // 4)  # the mask is built at the size it meets
    assert parse_task("SR", scale=3)[0].factor == 3
    assert parse_task("superres2", sr_kernel="lanczos")[0].kernel == "lanczos"
    assert parse_task("jpeg30+denoise0.05+blur1.5").name == "jpeg30+denoise0.05+blur1.5"
    assert len(parse_task("reconstruct")) == 0
    assert parse_task("inpaint", mask=center_box_mask((H, W)))(smooth_image()).shape == (1, 3, H, W)


@pytest.mark.parametrize(
    "task,kwargs,message",
    [
        ("sr4+dehaze", {}, "unknown task 'dehaze'; known tasks: sr<factor>, colorize, inpaint"),
        ("sr", {}, "sr needs a value"),
        ("sr4", {"scale": 2}, "give the sr parameter once"),
        ("sr2.5", {}, "whole number"),
        ("jpeg0", {}, "whole number in 1..100"),
        ("sr2+colorize+sr2", {}, "twice"),
        ("inpaint", {}, "needs a mask"),
        ("inpaint", {"mask": "center"}, "image_size"),
        ("colorize", {"mask": "center"}, "no inpainting step"),
        ("colorize", {"scale": 4}, "no 'sr' step"),
        ("sr2+inpaint", {"mask": torch.ones(1, 1, H, W), "image_size": (H, W)}, "low-resolution size"),
        ("colorize4", {}, "unknown task"),
    ],
)
def test_parse_task_errors_are_clear(task, kwargs, message):
    with pytest.raises(TaskError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_task(task, **kwargs)


def test_describe_is_json_friendly():
    import json

    chain = parse_task("sr2+colorize+inpaint+jpeg80+denoise0.1+blur2", mask="strokes", image_size=(H, W), seed=3)
    text = json.dumps(chain.describe())
    assert '"hole_fraction"' in text and '"quality": 80' in text and '"factor": 2' in text


# ----- device --------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_operator_runs_on_cuda_and_agrees_with_cpu():
    chain = parse_task("sr2+colorize+inpaint+jpeg60+blur1+denoise0.1", mask="strokes", image_size=(H, W))
    others = [SuperResolution(4, "dgp-lanczos2", reupsample=True, fusion="lowpass"), SuperResolution(3, "lanczos")]
    x_cpu = smooth_image(n=2)
    guess_cpu = smooth_image(n=2, seed=5)
    for op in [chain, *others]:
        op_gpu = op.to("cuda")
        x, guess = x_cpu.cuda().requires_grad_(), guess_cpu.cuda()
        y = op_gpu(x)
        y.square().mean().backward()
        assert y.is_cuda and torch.isfinite(x.grad).all()
        assert torch.allclose(y.detach().cpu(), op.to("cpu")(x_cpu), atol=1e-4)
        fused = op_gpu.to("cuda").fuse(guess, y.detach())
        assert fused.is_cuda and torch.allclose(fused.cpu(), op.to("cpu").fuse(guess_cpu, y.detach().cpu()), atol=1e-3)
        assert op_gpu.to("cuda").degrade(x.detach()).is_cuda
        assert op_gpu.valid_mask((H, W), "cuda").is_cuda
