"""StyleGAN-XL generator: parity with the official stem and super-resolution stage, num_ws, truncation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganprior.loading.safe_pickle import load_official_pickle
from ganprior.models.stylegan3 import IncompatibleNetworkError, synthesis_schedule
from ganprior.models.stylegan_xl import (
    StyleGANXLPrior,
    from_config,
    from_official,
    num_ws_per_resolution,
    superres_schedule,
)
from official_cases import load_case, max_diff

ATOL = 1e-4
CASES = ["sgxl_16", "sgxl_32"]
#: Fixture construction (manifest): ``--cbase 256 --cmax 16`` -> channel_base 512, channel_max 32.
FIXTURE_CHANNELS = dict(channel_base=512, channel_max=32)


@pytest.fixture(scope="module", params=CASES)
def case(request, official_dir):
    return (request.param, *load_case(official_dir, request.param))


@pytest.fixture(scope="module")
def prior(case):
    return from_official(case[1])


@pytest.fixture(scope="module")
def stem(official_dir):
    return from_official(load_case(official_dir, "sgxl_16")[0])


# ----- parity with the official reference arrays ------------------------------------------------


def test_shapes_and_class_wise_w_avg_match_official(prior, case):
    name, _, ref = case
    assert prior.num_ws == int(ref["num_ws"]) == {"sgxl_16": 16, "sgxl_32": 21}[name]
    assert (prior.c_dim, prior.z_dim, prior.w_dim) == (1000, 64, 512)
    assert prior.G.mapping.w_avg.shape == (1000, 512)
    assert max_diff(prior.G.mapping.w_avg, ref["w_avg"]) == 0.0
    assert max_diff(prior.w_avg(ref["c"]), ref["w_avg"][ref["class_idx"]]) == 0.0


@pytest.mark.parametrize("classes", ["", "_class207"])
@pytest.mark.parametrize("psi", ["1", "0.7"])
def test_mapping_and_synthesis_match_official(prior, case, psi, classes):
    _, _, ref = case
    c = ref["c_chosen"] if classes else ref["c"]
    if classes:
        assert int(ref["chosen_class"]) == 207 and (c.argmax(1) == 207).all()
    with torch.no_grad():
        ws = prior.mapping(ref["z"], c, truncation_psi=float(psi))
        img = prior.synthesis(ref[f"w_psi{psi}{classes}"])
    assert max_diff(ws, ref[f"w_psi{psi}{classes}"]) <= ATOL
    assert max_diff(img, ref[f"img_const_psi{psi}{classes}"]) <= ATOL


def test_full_forward_matches_official(prior, case):
    _, _, ref = case
    with torch.no_grad():
        img = prior(ref["z"][:1], ref["c"][:1], truncation_psi=0.7)
    assert max_diff(img, ref["img_const_psi0.7"][:1]) <= ATOL


def test_superres_stage_reuses_the_stem_mapping(prior, stem, case):
    _, _, ref = case
    with torch.no_grad():
        assert torch.equal(stem.G.mapping(ref["z"], ref["c"])[:, 0], prior.G.mapping(ref["z"], ref["c"])[:, 0])


# ----- structure: layer names, schedules, num_ws --------------------------------------------------


def test_superres_layer_names_skip_the_removed_critical_layer(official_dir):
    prior = from_official(load_case(official_dir, "sgxl_32")[0])
    names = prior.G.synthesis.layer_names
    assert names[11:13] == ["L11_36_32", "L13_36_32"] and not any(n.startswith("L12_") for n in names)
    assert names[-1] == "L20_32_3" and len(names) == 20 and prior.num_ws == 21
    assert prior.blocks()[0] is prior.G.synthesis.input
    assert [b.spec.name for b in prior.blocks()[1:]] == names


def test_schedule_formulas_reproduce_stored_stem_and_superres_layers(stem, official_dir):
    stored_stem = stem.config()["synthesis"]
    derived_stem = synthesis_schedule(512, 16, **FIXTURE_CHANNELS)
    stored_32 = from_official(load_case(official_dir, "sgxl_32")[0]).config()["synthesis"]
    derived_32 = superres_schedule(stored_stem, head_layers=7, up_factor=2, **FIXTURE_CHANNELS)
    for derived, stored in [(derived_stem, stored_stem), (derived_32, stored_32)]:
        assert derived["input"] == stored["input"] and derived["img_resolution"] == stored["img_resolution"]
        assert len(derived["layers"]) == len(stored["layers"])
        for mine, theirs in zip(derived["layers"], stored["layers"]):
            for key, value in theirs.items():
                expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-12)
                assert mine[key] == expected, (theirs["name"], key)


def test_num_ws_for_every_released_resolution():
    """ImageNet README settings (stem 10 layers, 7 head layers, x2 per stage): 37 ws at 512² (CRI paper)."""
    assert num_ws_per_resolution() == {16: 12, 32: 17, 64: 22, 128: 27, 256: 32, 512: 37, 1024: 42}


def test_512_schedule_matches_the_spec_table():
    config = synthesis_schedule(512, 16, channel_base=65536, channel_max=1024, num_layers=10)
    for _ in range(5):
        config = superres_schedule(config)
    names = [layer["name"] for layer in config["layers"]]
    assert names[:9] == [f"L{i}_36_1024" for i in range(8)] + ["L9_36_1024"]
    assert names[19:] == ["L20_148_1024", "L21_148_861", "L22_148_724", "L23_148_609", "L24_148_609",
                          "L25_276_512", "L26_276_431", "L27_276_362", "L28_276_304", "L29_276_304",
                          "L30_532_256", "L31_532_215", "L32_532_181", "L33_532_152", "L34_532_128",
                          "L35_512_128", "L36_512_3"]
    up_layers = {layer["name"][:3]: layer["out_cutoff"] for layer in config["layers"] if layer["up_factor"] == 4}
    assert up_layers == pytest.approx({"L10": 8, "L15": 16, "L20": 32, "L25": 64, "L30": 128}, rel=1e-12)


# ----- truncation options (§4.7) -------------------------------------------------------------------


def test_truncation_uses_each_samples_class_center(stem, official_dir):
    _, ref = load_case(official_dir, "sgxl_16")
    z, c = ref["z"], ref["c"]
    with torch.no_grad():
        w = stem.mapping(z, c)
        ws = stem.mapping(z, c, truncation_psi=0.0, truncation_cutoff=3)
        soft = stem.mapping(z, 0.5 * c + 0.1 * torch.rand_like(c))  # soft labels read as their argmax
    center = stem.G.mapping.w_avg[ref["class_idx"]]
    assert max_diff(ws[:, :3], center[:, None].expand(-1, 3, -1)) == 0.0
    assert torch.equal(ws[:, 3:], w[:, 3:])
    assert torch.equal(soft, w)


def test_ws_from_seed_follows_the_official_sampling_path(stem):
    seed, n = 7, 3
    classes = np.random.RandomState(seed).randint(0, 1000, size=n)
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, 64))
    with torch.no_grad():
        w = stem.G.mapping(z, stem.class_matrix(torch.from_numpy(classes), n))
        assert max_diff(stem.ws_from_seed(seed, n), w) <= 1e-6
        center = stem.G.mapping.w_avg[torch.from_numpy(classes)][:, None]
        assert max_diff(stem.ws_from_seed(seed, n, truncation_psi=0.5), center + (w - center) * 0.5) <= 1e-6
        fixed = stem.ws_from_seed(seed, n, class_idx=207, truncation_psi=0.0)
        assert max_diff(fixed, stem.G.mapping.w_avg[207].expand(n, stem.num_ws, -1)) <= 1e-6
        centroids = torch.stack([w[1, 0] + 0.01, w[0, 0] - 0.01, w[2, 0] + 0.02, w[2, 0] + 5])
        multimodal = stem.ws_from_seed(seed, n, truncation_psi=0.0, centroids=centroids)
    assert max_diff(multimodal, centroids[[1, 0, 2]][:, None].expand(-1, stem.num_ws, -1)) <= 1e-6


# ----- our own format, errors ---------------------------------------------------------------------


def test_config_round_trip_is_bit_identical(prior, case):
    _, _, ref = case
    config = json.loads(json.dumps(prior.config()))
    assert config["family"] == "stylegan_xl"
    rebuilt = from_config(config, prior.state_dict())
    for key, value in prior.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    with torch.no_grad():
        assert torch.equal(rebuilt(ref["z"][:1], ref["c"][:1]), prior(ref["z"][:1], ref["c"][:1]))


def test_fresh_unconditional_stage_runs_and_backpropagates():
    torch.manual_seed(0)
    synthesis = superres_schedule(synthesis_schedule(16, 8, channel_base=64, channel_max=8, num_layers=4),
                                  head_layers=3, channel_base=64, channel_max=8)
    mapping = dict(z_dim=8, c_dim=0, w_dim=16, num_ws=len(synthesis["layers"]) + 1, embed_classes=10, embed_dim=4)
    prior = StyleGANXLPrior(mapping, synthesis)
    assert "G.mapping.embed.weight" in prior.state_dict()  # carried even when unconditional, as upstream
    ws = prior.mapping(torch.randn(2, 8)).detach().requires_grad_(True)
    img = prior.synthesis(ws)
    assert img.shape == (2, 3, 16, 16)
    img.sum().backward()
    assert ws.grad.abs().sum() > 0
    assert prior.w_avg().shape == (1, 16)


def test_bad_inputs_give_clear_errors(stem, official_dir):
    with pytest.raises(IncompatibleNetworkError, match="class-conditional"):
        stem.mapping(torch.zeros(2, 64), None)
    with pytest.raises(IncompatibleNetworkError, match="w_avg needs c"):
        stem.w_avg()
    with pytest.raises(ValueError, match="out of range"):
        stem.class_matrix(1000, 1)
    with pytest.raises(IncompatibleNetworkError, match="stylegan3"):
        from_official(load_official_pickle(official_dir / "sg3_t_64" / "network-snapshot.stripped.pkl"))
