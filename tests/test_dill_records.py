"""StyleGAN-XL snapshots as the official loop writes them: dill 0.3.4 / 0.4.x, with and without the discriminator.

Fixtures (``tests/fixtures/xl_dill``, rebuilt by ``scripts/make_xl_dill_fixtures.py`` from the official code):
``G.pkl`` has ``D=None``, ``GD.pkl`` the pickled ``ProjectedDiscriminator`` (timm backbones, hook closures,
bound methods; its tensors cut to one element each to keep the file small), ``reference.npz`` the official
loader's outputs. ``hostile_dill.py`` holds the hostile twin of every record shape accepted here.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ganprior.loading import errors, load_model
from ganprior.loading.pickle_scan import scan_official_pickle
from ganprior.loading.safe_pickle import (
    SafeUnpickler,
    SkippedRecord,
    load_official_pickle,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hostile_dill

FIXTURES = HERE / "fixtures" / "xl_dill"
CASES = [(version, name) for version in ("dill034", "dill041") for name in ("G.pkl", "GD.pkl")]


def max_diff(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


@pytest.mark.parametrize("version, name", CASES)
def test_official_xl_snapshots_load_with_parity(version, name, one_thread):
    ref = np.load(FIXTURES / version / "reference.npz")
    prior = load_model(str(FIXTURES / version / name))
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        assert max_diff(prior.mapping(z, c, truncation_psi=1.0), ref["w"]) <= 1e-4
        assert max_diff(prior.mapping(z, c, truncation_psi=0.7), ref["w_psi07"]) <= 1e-4
        assert max_diff(prior.synthesis(torch.from_numpy(ref["w"])), ref["img"]) <= 1e-4


@pytest.mark.parametrize("version", ["dill034", "dill041"])
def test_the_discriminator_is_parsed_as_inert_records_and_dropped(version):
    raw = (FIXTURES / version / "GD.pkl").read_bytes()
    scan = scan_official_pickle(raw, "GD.pkl")
    assert scan.skip_done and sum(scan.global_skipped) > 20  # timm, dill function/code/cell records, hooks ...
    blobs = scan.calls_skipped["torch.storage._load_from_bytes"]
    assert sum(blobs) > 100 and not all(blobs)  # D's storages are never built; the generators' are
    parsed = SafeUnpickler(io.BytesIO(raw), scan.global_skipped, scan.calls_skipped).load()
    assert isinstance(parsed["D"], SkippedRecord)
    assert load_official_pickle(FIXTURES / version / "GD.pkl")["D"] is None
    # the generators are the same objects as in the file without D
    with_d, without = load_model(str(FIXTURES / version / "GD.pkl")), load_model(str(FIXTURES / version / "G.pkl"))
    a, b = with_d.state_dict(), without.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_dill_034_numpy_records_rebuild_plain_scalars():
    raw = hostile_dill.accepted_dill_scalar()
    value = SafeUnpickler(io.BytesIO(raw), scan_official_pickle(raw, "x").global_skipped).load()["w_gain"]
    assert isinstance(value, np.float32) and value == 1.5


def test_skipped_modules_are_never_imported(tmp_path, monkeypatch):
    """The discriminator's classes name real modules; a skipped record must not import or call any of them."""
    probe = "gp_probe_discriminator00"  # same length as 'pg_modules.discriminator', spliced into the file
    assert len(probe) == len("pg_modules.discriminator")
    marker = tmp_path / "imported"
    (tmp_path / f"{probe}.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass ProjectedDiscriminator:\n"
                                          "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = (FIXTURES / "dill041" / "GD.pkl").read_bytes()
    assert raw.count(b"pg_modules.discriminator") == 1
    path = tmp_path / "GD.pkl"
    path.write_bytes(raw.replace(b"pg_modules.discriminator", probe.encode()))
    load_model(str(path))
    assert not marker.exists() and probe not in sys.modules
    __import__(probe)  # sanity: the probe is importable and does run when imported
    assert marker.exists()


@pytest.mark.parametrize("name, expected, raw, what", hostile_dill.twins("touch /tmp/ganprior-twin-ran"),
                         ids=lambda v: v if isinstance(v, str) and v.endswith(".pkl") else "")
def test_every_accepted_record_shape_has_a_refused_twin(name, expected, raw, what, tmp_path):
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(errors.CheckpointError) as info:
        load_model(str(path))
    assert type(info.value).__name__ == expected, (what, info.value)
    assert not Path("/tmp/ganprior-twin-ran").exists()
