"""Face pipeline: the FFHQ quad from hand-computed landmarks, exact affine sampling, the align ->
un-align round trip on skimage's astronaut (PSNR inside the feathered region, nothing changed
outside), the degradation carried into each crop, and ``restore --faces`` end to end with the
StyleGAN2 parity fixture standing in for an FFHQ model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganprior.faces.align import FaceQuad, align, feather, ffhq_quad, paste

dlib = pytest.importorskip("dlib", reason="ganprior[faces] (dlib-bin) not installed")
skimage_data = pytest.importorskip("skimage.data")


def _landmarks(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[48], lm[54] = eye_left, eye_right, mouth_left, mouth_right
    return lm


def _psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    return 10 * np.log10(4.0 / float(((a - b) ** 2)[where.expand_as(a)].mean()))


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    from ganprior.faces.detect import find_faces

    faces = find_faces(astronaut)
    assert len(faces) == 1  # the mission patch (HOG score 0.12) is not a face
    return faces[0]


def test_ffhq_quad_by_hand():
    """Eyes at (40, 50) and (60, 50), mouth corners (42, 70) and (58, 70): eye_to_eye (20, 0),
    eye_to_mouth (0, 20), so x = (40, 0) (max(2·20, 1.8·20)), y = (0, 40), c = (50, 52); corners in
    FFHQ's PIL coordinates, minus 0.5 for ours."""
    quad = ffhq_quad(_landmarks((40, 50), (60, 50), (42, 70), (58, 70)))
    expected = np.array([[10, 12], [10, 92], [90, 92], [90, 12]]) - 0.5
    assert np.allclose(quad.corners, expected) and quad.size == pytest.approx(80)
    t = np.radians(30)  # a tilted head: rotated landmarks give the same quad, rotated
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    turn = lambda p: (np.asarray(p, float) - 50) @ rot.T + 50  # noqa: E731
    tilted = ffhq_quad(_landmarks(*(turn(p) for p in [(40, 50), (60, 50), (42, 70), (58, 70)])))
    assert np.allclose(tilted.corners, turn(expected + 0.5) - 0.5)
    with pytest.raises(ValueError, match="68"):
        ffhq_quad(np.zeros((5, 2)))


def test_align_samples_the_affine_map_exactly():
    """On a linear ramp, bilinear sampling is exact: crop pixel (i, j) = ramp at the quad's point."""
    h, w = 60, 80
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    ramp = ((0.01 * xx + 0.02 * yy) - 0.8)[None, None]
    quad = FaceQuad(np.array([[20.0, 10.0], [15.0, 40.0], [45.0, 45.0], [50.0, 15.0]]))
    crop, inside = align(ramp, quad, 16)
    m = quad.affine(16)
    for i, j in [(0, 0), (5, 11), (15, 15)]:
        x, y = m @ np.array([i, j, 1.0])
        assert float(crop[0, 0, j, i]) == pytest.approx(0.01 * x + 0.02 * y - 0.8, abs=1e-9)
    assert bool((inside == 1).all())
    outside = FaceQuad(quad.corners - 30)  # partly off the photo: those crop pixels are not observed
    _, inside = align(ramp, outside, 16)
    assert 0 < float(inside.mean()) < 1 and float(inside[0, 0, 0, 0]) == 0


@pytest.mark.parametrize("size", [256, 1024])
def test_round_trip_reproduces_the_face_and_nothing_else(astronaut, astronaut_face, size):
    quad = ffhq_quad(astronaut_face[1])
    crop, inside = align(astronaut, quad, size)
    assert crop.shape == (1, 3, size, size) and bool((inside == 1).all())
    back, alpha = paste(astronaut, crop, quad)
    face = alpha > 0
    assert _psnr(back, astronaut, face) > 30
    assert float((back - astronaut).abs()[(~face).expand_as(back)].max()) == 0.0
    assert 20_000 < int(face.sum()) < 40_000  # the ~174 px quad of a 512 px photo
    assert float(feather(size).max()) == 1.0 and float(feather(size)[0, 0, 0].max()) == 0.0


def _fixture_prior(official_dir):
    from ganprior.api import load_prior

    return load_prior(official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl")


QUICK = dict(method="wplus", steps=3, perceptual="mse", progress=False, options=dict(w_avg_samples=100))


def test_restore_faces_carries_the_mask_and_keeps_the_rest(astronaut, official_dir):
    from ganprior.faces import restore_faces

    prior = _fixture_prior(official_dir)
    hole = "box:200,130,250,160"  # the mouth
    result = restore_faces(astronaut, task="inpaint", model=prior, mask=hole, **QUICK)
    assert result.image.shape == astronaut.shape and len(result.faces) == 1
    face = result.alpha > 0
    assert float((result.image - astronaut).abs()[(~face).expand_as(astronaut)].max()) == 0.0
    crop_mask = result.faces[0].result.mask
    assert crop_mask.shape[-1] == prior.resolution and 0 < float((crop_mask < 0.5).float().mean()) < 0.5
    in_hole = torch.zeros_like(face)
    in_hole[..., 130:160, 200:250] = True
    assert float((result.image - astronaut).abs()[in_hole.expand_as(astronaut)].mean()) > 0.05  # filled
    observed_face = face & ~in_hole
    assert float((result.image - astronaut).abs()[observed_face.expand_as(astronaut)].max()) < 1e-6


def test_pasting_an_oracle_face_restores_the_hole(astronaut, official_dir, monkeypatch):
    """The geometry end to end: if each crop's restoration were the clean aligned face (an oracle in
    place of the GAN), the pasted result must be close to the clean photo in the hole, far closer than
    the degraded input (the 32 px fixture resolution limits how close)."""
    from types import SimpleNamespace

    import ganprior.api
    from ganprior.faces import restore_faces
    from ganprior.faces.detect import find_faces

    prior = _fixture_prior(official_dir)
    quad = ffhq_quad(find_faces(astronaut)[0][1])
    oracle = lambda crop, **kw: SimpleNamespace(image=align(astronaut, quad, crop.shape[-1])[0])  # noqa: E731
    monkeypatch.setattr(ganprior.api, "restore", oracle)
    degraded = astronaut.clone()
    degraded[..., 110:135, 190:215] = 0  # a cheek (a hole over the mouth hides the face from HOG)
    result = restore_faces(degraded, task="inpaint", model=prior, mask="box:190,110,215,135", **QUICK)
    hole = (slice(None), slice(None), slice(110, 135), slice(190, 215))
    err = lambda x: float((x[hole] - astronaut[hole]).pow(2).mean().sqrt())  # noqa: E731
    assert err(result.image) < 0.35 * err(degraded)


def test_restore_faces_low_resolution_crop(astronaut, official_dir):
    """×2 SR: the face is found on the 256 px photo, its crop is observed at 16 px for the 32 px model,
    the output is the 512 px photo; outside the face it is the bicubic enlargement."""
    from ganprior.degradations import resize
    from ganprior.faces import restore_faces

    prior = _fixture_prior(official_dir)
    small = resize(astronaut, (256, 256), "area")
    result = restore_faces(small, task="sr2", model=prior, **QUICK)
    assert result.image.shape[-2:] == (512, 512)
    assert result.faces[0].result.observation.shape[-1] == prior.resolution // 2
    outside = (result.alpha == 0).expand_as(result.image)
    assert torch.equal(result.image[outside], resize(result.observation, (512, 512), "bicubic")[outside])


def test_cli_faces_end_to_end_and_no_face_refusal(astronaut, official_dir, tmp_path):
    from PIL import Image

    from ganprior.cli.main import cli

    photo, blank = tmp_path / "astronaut.png", tmp_path / "blank.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    Image.new("RGB", (64, 48), (120, 120, 120)).save(blank)
    args = ["--faces", "--task", "inpaint", "--mask", "box:200,130,250,160", "--method", "wplus",
            "--model", str(official_dir / "sg2_uncond_32" / "network-snapshot.stripped.pkl"), "--steps", "3",
            "--perceptual", "mse", "--option", "w_avg_samples=100", "--out", str(tmp_path / "out")]
    run = CliRunner().invoke(cli, ["restore", str(photo), *args])
    assert run.exit_code == 0, run.output
    restored = Image.open(tmp_path / "out" / "astronaut" / "restored.png")
    assert restored.size == (512, 512)
    assert (tmp_path / "out" / "astronaut" / "face_0" / "restored.png").is_file()
    refused = CliRunner().invoke(cli, ["restore", str(blank), *args[:2], "colorize", *args[5:]])
    assert refused.exit_code != 0 and "no face found" in refused.output
    assert "Traceback" not in refused.output


# ----- identity similarity (dlib's ResNet face embedding) ----------------------------------------------
def test_identity_similarity_ranks_degradations(astronaut):
    import torch.nn.functional as F

    from ganprior.metrics.images import MetricInputError
    from ganprior.metrics.identity import identity_scores

    same = identity_scores(astronaut, astronaut)
    assert same["id_sim"] == pytest.approx(1.0) and same["id_dist"] == pytest.approx(0.0, abs=1e-9)
    noisy = (astronaut + 0.3 * torch.randn(astronaut.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    camera = torch.from_numpy(skimage_data.camera()).float()[None, None] / 127.5 - 1
    other = F.interpolate(camera, (512, 512)).expand(-1, 3, -1, -1)
    near, far = identity_scores(noisy, astronaut), identity_scores(other, astronaut)
    assert 1.0 > near["id_sim"] > far["id_sim"] and near["id_dist"] < 0.6 < far["id_dist"]
    with pytest.raises(MetricInputError, match="no face"):
        identity_scores(astronaut, torch.zeros_like(astronaut) - 0.2)


def test_identity_in_score_and_bench(astronaut, tmp_path):
    import json

    from PIL import Image

    from ganprior.bench.scoring import ImageScorer
    from ganprior.cli.main import cli
    from ganprior.degradations import parse_task

    Image.fromarray(skimage_data.astronaut()).save(tmp_path / "clean.png")
    Image.fromarray(skimage_data.astronaut()[:, ::-1].copy()).save(tmp_path / "mirrored.png")
    run = CliRunner().invoke(cli, ["score", str(tmp_path / "mirrored.png"), "--ref", str(tmp_path / "clean.png")])
    assert run.exit_code == 0, run.output
    metrics = json.loads(run.output[run.output.index("{"):])["metrics"]
    assert 0.9 < metrics["id_sim"] < 1.0 and "id_dist" in metrics
    degradation = parse_task("colorize")
    values = ImageScorer(("id_sim",))(astronaut, astronaut, degradation(astronaut), degradation, None)
    assert values["id_sim"] == pytest.approx(1.0)
    blank = torch.zeros(1, 3, 32, 32)
    scorer = ImageScorer(("id_sim",))
    assert scorer(blank, blank, blank, degradation, None) == {} and "no face" in scorer.unavailable["id_sim"]
