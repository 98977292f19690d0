"""Full-size readiness, quick version: the released architectures at 1/16 width and 32² (BigGAN at
128²) run every method that applies, one step per stage, through ``ganprior.restore``; the full-size
configurations themselves are checked against the registry (bench/full_size.py measures them)."""

from __future__ import annotations

import math

import pytest
import torch

from ganprior.bench import full_size

pytestmark = pytest.mark.usefixtures("one_thread")


def test_full_size_xl_schedule_has_the_papers_37_ws():
    synthesis = full_size.stylegan_xl_synthesis(512)
    assert len(synthesis["layers"]) + 1 == 37
    assert synthesis["img_resolution"] == 512
    assert max(layer["out_channels"] for layer in synthesis["layers"]) == 1024


@pytest.mark.parametrize("name", list(full_size.ARCHITECTURES))
def test_reduced_architecture_runs_every_method(name):
    prior = full_size.build(name, width=1 / 16, resolution=32)
    assert prior.resolution == (128 if name.startswith("biggan") else 32)
    for method in full_size.ARCHITECTURES[name][1]:
        out = full_size.run_method(prior, method, steps=1, perceptual="vgg16-random")
        assert out["stopped"] is None, (method, out["stopped"])
        assert out["s_per_step"] and all(math.isfinite(v) and v > 0 for v in out["s_per_step"].values())


def test_step_measures_batches():
    prior = full_size.build("stylegan2-ffhq-1024x1024", width=1 / 16, resolution=32)
    one, two = full_size.run_step(prior, 1), full_size.run_step(prior, 2)
    assert one["batch"] == 1 and two["batch"] == 2 and two["s_per_step"] > 0 and two["cpu_s_per_step"] > 0


@pytest.mark.parametrize("name", ["stylegan3-t-ffhq-1024x1024", "biggan-dgp-256"])
def test_step_flops_grow_with_width(name):
    narrow, wide = (full_size.step_gflop(full_size.build(name, width=w, resolution=32)) for w in (1 / 16, 1 / 8))
    assert 0 < narrow["forward"] < wide["forward"] and wide["backward"] >= wide["forward"]


def test_random_vgg_reduces_large_images_like_nvidia_vgg16():
    distance = full_size.RandomVGG16Distance(width=1 / 16)
    a, b = torch.rand(2, 3, 512, 512) * 2 - 1, torch.rand(2, 3, 512, 512) * 2 - 1
    taps = distance._taps(a)
    assert taps[0].shape[-1] == 256  # area-reduced to 256² first
    d = distance(a, b)
    assert d.shape == (2,) and torch.all(d > 0) and torch.allclose(distance(a, a), torch.zeros(2), atol=1e-6)


def _filtered_lrelu_outputs(monkeypatch, recompute: int, chunk: int, batch: int = 2, up: int = 2):
    """Output and gradients (x, bias) of one filtered_lrelu call under the given thresholds."""
    from ganprior.ops import filtered_lrelu as op

    monkeypatch.setattr(op, "RECOMPUTE_NUMEL", recompute)
    monkeypatch.setattr(op, "CHUNK_NUMEL", chunk)
    g = torch.Generator().manual_seed(0)
    x, b = torch.randn(batch, 5, 12, 12, generator=g).requires_grad_(True), torch.randn(5, generator=g).requires_grad_(True)
    fu = fd = torch.tensor([0.1, 0.4, 0.4, 0.1])
    padding = 3 if up == 2 else [-2, -3, -2, -3]
    y = op.filtered_lrelu(x, fu, fd, b, up=up, down=2, padding=padding, clamp=2.0)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad, b.grad


def test_filtered_lrelu_recomputation_gives_the_same_gradients(monkeypatch):
    stored = _filtered_lrelu_outputs(monkeypatch, 2**40, 2**40)
    recomputed = _filtered_lrelu_outputs(monkeypatch, 1, 2**40)  # one chunk, recomputed in backward
    for a, b in zip(stored, recomputed):
        assert torch.equal(a, b)


@pytest.mark.parametrize("batch, up", [(1, 2), (3, 2), (2, 4)])
@pytest.mark.parametrize("chunk", [1, 700, 3000])  # one plane, a few planes, several images' planes
def test_filtered_lrelu_in_chunks_equals_one_call(monkeypatch, batch, up, chunk):
    whole = _filtered_lrelu_outputs(monkeypatch, 2**40, 2**40, batch, up)
    chunked = _filtered_lrelu_outputs(monkeypatch, 1, chunk, batch, up)
    for a, b in zip(whole, chunked):  # depthwise convs over fewer channels may round differently
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    assert whole[0].abs().max() > 0.1 and whole[1].abs().max() > 0.01  # not a vacuous comparison


def test_filtered_lrelu_chunks_without_autograd(monkeypatch):
    from ganprior.ops import filtered_lrelu as op

    x, b = torch.randn(2, 5, 12, 12), torch.randn(5)
    fu = fd = torch.tensor([0.1, 0.4, 0.4, 0.1])
    with torch.no_grad():
        whole = op.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=3)
        monkeypatch.setattr(op, "RECOMPUTE_NUMEL", 1)
        monkeypatch.setattr(op, "CHUNK_NUMEL", 600)
        chunked = op.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=3)
    assert torch.allclose(whole, chunked, rtol=1e-5, atol=1e-6)


def test_modulated_conv_recomputed_weights_give_the_same_gradients(monkeypatch):
    from ganprior.models import stylegan3

    g = torch.Generator().manual_seed(0)
    x0, s0 = torch.randn(2, 6, 9, 9, generator=g), torch.randn(2, 6, generator=g)
    weight, gain = torch.randn(5, 6, 3, 3, generator=g), torch.tensor(0.7)

    def outputs(threshold: int):
        monkeypatch.setattr(stylegan3, "RECOMPUTE_WEIGHT_NUMEL", threshold)
        x, s = x0.clone().requires_grad_(True), s0.clone().requires_grad_(True)
        y = stylegan3.modulated_conv2d(x, weight, s, padding=2, input_gain=gain)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        return y.detach(), x.grad, s.grad

    for a, b in zip(outputs(2**40), outputs(1)):
        assert torch.equal(a, b)


def test_scoring_chunks_shrink_with_resolution():
    from ganprior.methods.centroids import render_chunk

    assert render_chunk(8, 32) == 8 and render_chunk(8, 128) == 8
    assert render_chunk(8, 256) == 2 and render_chunk(8, 512) == 1 and render_chunk(8, 1024) == 1


def test_recompute_paths_give_way_inside_vmap(monkeypatch):
    """Batched pivotal tuning runs the synthesis under torch.func.vmap, which cannot run a checkpoint: with
    every recompute threshold at its lowest, a vmapped StyleGAN3 render and its weight gradients equal the
    plain ones."""
    import ganprior.models.stylegan3 as stylegan3
    import ganprior.ops.filtered_lrelu as filtered_lrelu
    from ganprior.methods.batched_tuning import render_with_weights, tuned_parameter_names

    torch.manual_seed(0)
    prior = full_size.build("stylegan3-t-ffhq-1024x1024", width=1 / 16, resolution=32).eval()
    names = tuned_parameter_names(prior)
    params = dict(prior.named_parameters())

    def render():
        weights = {n: params[n].detach().unsqueeze(0).repeat(2, *[1] * params[n].ndim).requires_grad_(True)
                   for n in names}
        ws = torch.randn(2, 1, prior.num_ws, prior.w_dim, generator=torch.Generator().manual_seed(1))
        img = render_with_weights(prior, weights, ws, torch.zeros(2, 1, prior.c_dim))
        img.square().sum().backward()
        return img.detach(), [weights[n].grad for n in names]

    plain, plain_grads = render()
    monkeypatch.setattr(filtered_lrelu, "RECOMPUTE_NUMEL", 1)
    monkeypatch.setattr(filtered_lrelu, "CHUNK_NUMEL", 2**10)
    monkeypatch.setattr(stylegan3, "RECOMPUTE_WEIGHT_NUMEL", 1)
    low, low_grads = render()
    assert (plain - low).abs().max() <= 1e-5
    for a, b in zip(plain_grads, low_grads):
        assert (a - b).abs().max() <= 1e-4 * max(a.abs().max().item(), 1.0)


# ----- estimated peak memory (fake tensors) -----------------------------------------------------
def test_fake_tracker_counts_each_storage_once_and_frees_it():
    """Views share their base's storage (counted once); a storage leaves the count when its last
    view dies. Nothing is allocated: the tensors are fake (the replayed malloc blocks are never touched)."""
    from ganprior.bench import memory_estimate

    mb = 64 * 2**20  # above glibc's largest mmap threshold: the replayed blocks are always mappings of their own
    with memory_estimate.fake_tracking() as tracker:
        x = torch.empty(mb // 4)
        views = [x.view(4096, 4096), x[::2], x.view(4096, 4096).t(), x.unsqueeze(0)]
        assert tracker.live == mb
        y = x + 1
        assert tracker.live == 2 * mb
        del x
        assert tracker.live == 2 * mb  # the views keep x's storage
        del views
        assert tracker.live == mb and tracker.peak == 2 * mb
        del y
        assert tracker.live == 0


def test_malloc_replay_peaks_with_the_live_blocks():
    """The replayed footprint holds both 64 MiB blocks at its peak. In a fresh process: a long-lived
    one (this test run) may serve them from free heap it already has, which moves no footprint."""
    import subprocess
    import sys

    code = ("import torch; from ganprior.bench import memory_estimate as m\n"
            "with m.fake_tracking() as t:\n"
            "    x = torch.empty(2**24); y = x + 1; del x, y\n"
            "print(t.heap.peak if t.heap.available else -1)")
    peak = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    if peak == -1:
        pytest.skip("the malloc replay needs glibc")
    assert peak >= 2 * 64 * 2**20, peak


def _bench_worker(*args: str) -> dict:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "full_size.py"
    proc = subprocess.run([sys.executable, str(script), "--worker", "--steps", "1", "--rounds", "1", "--threads", "1",
                           "--address-space-mb", "12000", *args], capture_output=True, text=True, check=True)
    return json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))


def test_worker_peak_memory_is_its_own_not_its_parents():
    """``ru_maxrss`` survives fork + exec, so a bench worker started by a larger process (pytest, the
    bench driver) used to report the parent's size; ``peak_rss_mb`` must give the worker's own."""
    import subprocess
    import sys

    from ganprior.bench.full_size import peak_rss_mb

    ballast = bytearray(800 * 2**20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touched: resident in this process
    code = "from ganprior.bench.full_size import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert peak_rss_mb() > 800 and child < peak_rss_mb() - 600, (child, peak_rss_mb())
    del ballast


def test_estimate_agrees_with_a_measured_case():
    """StyleGAN2 at 1/4 width, 128², inner step: what batch 4 adds over batch 1, estimated on fake
    tensors (nothing computed) and measured (peak RSS of the same cases run for real), each case in a
    fresh process. The difference cancels the process's own memory, whose library pages the kernel
    may evict on a busy machine. The live-tensor growth is at most the measured one; the replayed
    malloc footprint's is within 35 % (it was -8 % here; counting nothing gives -100 %, counting every
    view several times the measurement)."""
    case = ["--model", "stylegan2-ffhq-1024x1024", "--width", "0.25", "--resolution", "128"]
    est = [_bench_worker("--estimate", "--case", f"step:{b}", *case) for b in (1, 4)]
    real = [_bench_worker("--case", f"step:{b}", *case) for b in (1, 4)]
    import torch

    assert real[0]["cpu"].endswith(torch.backends.cpu.get_cpu_capability())  # CPU seconds compare within one kind
    grown = real[1]["peak_rss_mb"] - real[0]["peak_rss_mb"]
    assert grown > 200  # the cases hold real memory to compare with
    assert est[1]["tensor_peak_mb"] - est[0]["tensor_peak_mb"] <= 1.1 * grown
    if est[0]["malloc_peak_mb"]:  # glibc only
        ratio = (est[1]["malloc_peak_mb"] - est[0]["malloc_peak_mb"]) / grown
        assert abs(ratio - 1) < 0.35, (est, real)
