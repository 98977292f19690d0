"""Training code of the embedded prior on a tiny synthetic dataset (CI never trains for real)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganprior.cli.train import command as train_command
from ganprior.loading.native import load_native
from ganprior.training.augment import DiffAugment
from ganprior.training.checkpoint import CheckpointError, load_checkpoint
from ganprior.training.losses import discriminator_loss, generator_loss, r1_penalty
from ganprior.training.loop import TrainConfig, train

TINY = TrainConfig(batch=4, z_dim=16, w_dim=16, mapping_layers=2, g_channel_base=64, g_channel_max=32,
                   d_channel_base=64, d_channel_max=32, d_mapping_layers=1, r1_interval=2)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: threading only adds overhead (and contention on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_npz(tmp_path):
    """24 coloured squares on white, 3 classes, in the layout `ganprior data build` writes."""
    rng = np.random.default_rng(0)
    images = np.full((24, 8, 8, 3), 255, np.uint8)
    labels = np.arange(24) % 3
    for i, k in enumerate(labels):
        images[i, 2:6, 2:6] = rng.integers(0, 256, 3) // (k + 1)
    path = tmp_path / "tiny_8.npz"
    np.savez(path, images=images, labels=labels, vendors=np.zeros(24, np.int64), split=np.zeros(24, np.uint8),
             classes=np.array(["a", "b", "c"]), vendor_names=np.array(["v"]))
    return path


def _run(npz, out, iters, resume=True):
    return train(npz, out, TINY, resume=resume, max_iters=iters, log_every=1, sample_every=2, snapshot_every=0)


def test_resume_continues_at_the_right_iteration_with_identical_state(tiny_npz, tmp_path):
    straight = _run(tiny_npz, tmp_path / "straight", 5)
    _run(tiny_npz, tmp_path / "split", 3)
    assert load_checkpoint(tmp_path / "split" / "ckpt.pt")["iteration"] == 3
    resumed = _run(tiny_npz, tmp_path / "split", 5)
    assert resumed.iteration == straight.iteration == 5
    for name in ("G", "D", "G_ema", "opt_G", "opt_D"):
        a, b = straight.state_dict()[name], resumed.state_dict()[name]
        flat_a, flat_b = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
        assert len(flat_a) == len(flat_b)
        assert all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(flat_a, flat_b)), name

    records = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(r[k]) for r in records for k in ("loss_D", "loss_G", "s_per_it"))
    assert any("r1" in r for r in records)
    assert (tmp_path / "split" / "samples" / "0000004.png").exists()

    prior = load_native(tmp_path / "split" / "prior.safetensors")
    assert prior.c_dim == 3 and prior.resolution == 8
    assert torch.equal(prior.G.state_dict()["synthesis.b8.conv1.weight"],
                       resumed.G_ema.state_dict()["synthesis.b8.conv1.weight"])
    assert torch.isfinite(prior.sample(2, classes=1)).all()


def test_existing_run_needs_resume_and_foreign_files_are_rejected(tiny_npz, tmp_path):
    _run(tiny_npz, tmp_path / "run", 1)
    with pytest.raises(CheckpointError, match="--resume"):
        _run(tiny_npz, tmp_path / "run", 2, resume=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ckpt.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable"):
        _run(tiny_npz, tmp_path / "bad", 2)


def test_cli_trains_and_reports_clean_errors(tiny_npz, tmp_path):
    runner = CliRunner()
    args = ["--data", str(tiny_npz), "--out", str(tmp_path / "cli"), "--max-iters", "2", "--batch", "4"]
    result = runner.invoke(train_command, args)
    assert result.exit_code == 0, result.output
    assert "iteration 2" in result.output
    again = runner.invoke(train_command, args)
    assert again.exit_code != 0 and "--resume" in again.output
    missing = runner.invoke(train_command, ["--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "ganprior data build" in missing.output
    bad = runner.invoke(train_command, args[:4] + ["--augment", "rotate"])
    assert bad.exit_code != 0 and "rotate" in bad.output


def test_diffaugment_is_differentiable_and_translation_moves_content():
    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    y = DiffAugment()(x)
    y.square().sum().backward()
    assert y.shape == x.shape and x.grad.abs().sum() > 0
    dot = torch.full((64, 1, 16, 16), -1.0)
    dot[:, :, 8, 8] = 1.0
    moved = DiffAugment("translation", fill=-1.0)(dot)
    assert ((moved == 1.0).sum(dim=[1, 2, 3]) == 1).all()  # the dot survives, exactly once
    assert (moved[:, 0, 8, 8] != 1.0).any()  # and is somewhere else in some samples
    with pytest.raises(ValueError, match="rotate"):
        DiffAugment("translation,rotate")


def test_losses_and_r1_match_closed_forms():
    zero = torch.zeros(5, 1)
    assert generator_loss(zero).item() == pytest.approx(np.log(2))
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * np.log(2))
    a = torch.randn(1, 3, 4, 4)
    penalty, logits = r1_penalty(lambda x, c: (x * a).sum(dim=[1, 2, 3]).unsqueeze(1) * c, torch.randn(2, 3, 4, 4),
                                 torch.full((2, 1), 2.0))
    assert logits.shape == (2, 1)
    assert torch.allclose(penalty, torch.full((2,), 4 * a.square().sum().item()))


def test_bf16_autocast_trains_with_r1_and_tracks_fp32(tiny_npz, tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        runs[precision] = train(tiny_npz, tmp_path / precision, TINY, max_iters=4, log_every=1, sample_every=100,
                                snapshot_every=0, precision=precision)
    bf16 = runs["bf16"]
    assert all(p.dtype == torch.float32 for p in [*bf16.G.parameters(), *bf16.D.parameters()])
    assert all(v.dtype == torch.float32 for s in bf16.opt_D.state.values() for v in s.values() if v.ndim)
    records = {k: [json.loads(line) for line in (tmp_path / k / "log.jsonl").read_text().splitlines()] for k in runs}
    assert sum("r1" in r for r in records["bf16"]) == 2  # R1's double backward ran under autocast
    assert all(np.isfinite(r[k]) for r in records["bf16"] for k in ("loss_D", "loss_G", "r1") if k in r)
    # same seed, same first batch: the first step's losses and R1 agree to bf16 rounding
    first32, first16 = records["fp32"][0], records["bf16"][0]
    for key in ("loss_D", "loss_G", "r1"):
        assert first16[key] == pytest.approx(first32[key], rel=0.05), key
    assert first16["loss_D"] != first32["loss_D"]  # and autocast really ran in bfloat16
    with pytest.raises(ValueError, match="precision"):
        train(tiny_npz, tmp_path / "fp16", TINY, max_iters=1, precision="fp16")


def test_resume_may_switch_precision_and_layout(tiny_npz, tmp_path):
    runner = CliRunner()
    args = ["--data", str(tiny_npz), "--out", str(tmp_path / "run"), "--batch", "4"]
    assert runner.invoke(train_command, args + ["--max-iters", "2"]).exit_code == 0
    result = runner.invoke(train_command, args + ["--max-iters", "4", "--resume", "--precision", "bf16",
                                                  "--channels-last"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "run" / "ckpt.pt")["iteration"] == 4
    bad = runner.invoke(train_command, args + ["--resume", "--precision", "fp16"])
    assert bad.exit_code != 0 and "--precision" in bad.output and "Traceback" not in bad.output


def test_resume_with_a_late_phase_schedule(tiny_npz, tmp_path):
    """``--resume --lr X --ema-kimg Y`` changes the stored run's rate (both optimisers, D's lazy-R1
    rescaling kept) and EMA, says so in the log and keeps it in later checkpoints; a plain resume keeps
    the stored rate, and the networks' shape cannot change on resume."""
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["--data", str(tiny_npz), "--out", str(out), "--batch", "4"]
    assert runner.invoke(train_command, args + ["--max-iters", "2"]).exit_code == 0
    result = runner.invoke(train_command, args + ["--max-iters", "3", "--resume", "--lr", "0.0005",
                                                  "--ema-kimg", "20"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(out / "ckpt.pt")
    assert state["iteration"] == 3 and state["config"]["lr_g"] == state["config"]["lr_d"] == 0.0005
    assert state["config"]["ema_kimg"] == 20
    ratio = TrainConfig().r1_interval / (TrainConfig().r1_interval + 1)
    assert state["opt_G"]["param_groups"][0]["lr"] == 0.0005
    assert state["opt_D"]["param_groups"][0]["lr"] == pytest.approx(0.0005 * ratio)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"iter": 2, "event": "resume-overrides", "lr_g": 0.0005, "lr_d": 0.0005, "ema_kimg": 20.0} in events
    assert runner.invoke(train_command, args + ["--max-iters", "4", "--resume"]).exit_code == 0
    assert load_checkpoint(out / "ckpt.pt")["opt_G"]["param_groups"][0]["lr"] == 0.0005
    with pytest.raises(ValueError, match="can change only"):
        train(tiny_npz, out, TINY, max_iters=5, overrides={"batch": 8})


def test_init_from_warm_starts_a_new_run_from_a_native_prior(tiny_npz, tmp_path):
    _run(tiny_npz, tmp_path / "source", 2)
    prior_file = tmp_path / "source" / "prior.safetensors"
    source = load_native(prior_file)
    warm = train(tiny_npz, tmp_path / "warm", TINY, init_from=prior_file, init_iteration=100, max_iters=100)
    assert warm.iteration == 100  # counts from the warm start; nothing trained yet
    for net in (warm.G, warm.G_ema):
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), source.G.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(warm.D.state_dict().values(), source.D.state_dict().values()))
    assert not warm.opt_G.state  # fresh Adam moments
    stepped = train(tiny_npz, tmp_path / "warm", TINY, max_iters=101, log_every=1)
    assert stepped.iteration == 101
    assert json.loads((tmp_path / "warm" / "log.jsonl").read_text().splitlines()[0])["iter"] == 101
    default_iteration = train(tiny_npz, tmp_path / "warm2", TINY, init_from=prior_file, max_iters=0)
    assert default_iteration.iteration == 2  # the file's recorded source iteration
    wider = TrainConfig(**{**TINY.__dict__, "g_channel_max": 16})
    with pytest.raises(CheckpointError, match="architecture"):
        train(tiny_npz, tmp_path / "mismatch", wider, init_from=prior_file, max_iters=0)
