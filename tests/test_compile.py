"""``--compile``: torch.compile'd synthesis and discriminator features equal eager (and the official
fixtures) to 1e-4 on one network per family by default and on every fixture network and the embedded
emoji32 under ``GANPRIOR_TEST_COMPILE=all``, keep the state-dict keys,
and a deep copy (pivotal tuning's tuned generator) renders with its own weights.

Compiling is the cost here (inductor runs the C++ compiler once per kernel: about 1 CPU-second
each, tens of kernels per graph), so every network is compiled once for the module, at batch 1 and
with static shapes (what a first ``--compile`` call gets), and each graph is compiled once:
  * the no-grad forward on every network;
  * forward+backward to ws on the cheapest network of each family (``BACKWARD``): the training
    graph whose forward is what inversion runs;
  * the discriminator features (no grad) on every network that has one.
Dynamo falling back to eager (recompile limit) is made an error, so parity cannot pass vacuously.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from ganprior.models.compiled import compile_prior, is_compiled

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-4
EMBEDDED = "emoji32"
#: Every official fixture (listed without reading ../shared, which may be absent) and emoji32.
ALL_NETWORKS = ["sg2_uncond_32", "sg2_cond_64_fp16", "sg3_t_64", "sg3_r_64", "sgxl_16", "sgxl_32", "biggan_128",
                EMBEDDED]
#: ``make test`` compiles one network per family (a cold compile of all of them is ~920 CPU-s, 8-10
#: minutes of a 2-core CI machine); ``GANPRIOR_TEST_COMPILE=all`` runs every network.
NETWORKS = ALL_NETWORKS if os.environ.get("GANPRIOR_TEST_COMPILE") == "all" else \
    [EMBEDDED, "sg3_t_64", "sgxl_16", "biggan_128"]
#: The cheapest network of each family gets its backward graphs compiled too (all of them would take
#: several more minutes; bench/compile_speed.py measures every network's forward+backward).
BACKWARD = {EMBEDDED, "sg3_t_64", "sgxl_16", "biggan_128"}
#: discriminator features: emoji32's by default (the other families' D are StyleGAN2 Ds or BigGAN's)
WITH_D = set(ALL_NETWORKS) if os.environ.get("GANPRIOR_TEST_COMPILE") == "all" else {EMBEDDED, "biggan_128"}

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _bench_module():
    """``bench/compile_speed.py``: the test checks the very inputs and passes the benchmark times."""
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("compile_speed", ROOT / "bench" / "compile_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench_module()


@pytest.fixture(scope="module", autouse=True)
def no_silent_fallback():
    """A network that hits dynamo's recompile limit would run eager and match eager trivially."""
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield
    torch._dynamo.reset()  # drop the compiled code of this module's networks


@pytest.fixture(scope="module", params=NETWORKS)
def network(request):
    """``(name, eager prior, compiled copy, ws, c, official image or None)`` at batch 1."""
    name = request.param
    fixtures = None
    if name != EMBEDDED:
        fixtures = request.getfixturevalue("official_dir")  # skips when ../shared is absent
        assert name in json.loads((fixtures / "manifest.json").read_text())["cases"]
    eager, ws, c, official = bench.case_inputs(fixtures, name)
    torch._dynamo.reset()  # a network whose D equals an earlier one's (sg3_r_64, sg3_t_64) compiles anew
    compiled = compile_prior(copy.deepcopy(eager), dynamic=False)
    assert is_compiled(compiled.G.synthesis if hasattr(compiled.G, "synthesis") else compiled.G)
    return name, eager, compiled, ws, c, official


def _compiles(fn):
    """``fn()``'s result; asserts that it compiled a new graph (not eager, not a stale cache entry)
    in one piece: a graph break splits the network (a module whose state changes under trace, e.g. a
    weight cache, recompiles per layer until dynamo's recompile limit)."""
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    result = fn()
    assert counters["stats"]["unique_graphs"] > graphs, "nothing was compiled"
    assert sum(counters["graph_break"].values()) == breaks, f"graph breaks: {dict(counters['graph_break'])}"
    return result


def test_synthesis_matches_eager_and_official(network):
    name, eager, compiled, ws, c, official = network
    if name in BACKWARD:  # the forward of the training graph (what inversion runs), and its gradient
        img_c, grad_c = _compiles(lambda: bench.image_and_grad(compiled, ws, c))
        img_e, grad_e = bench.image_and_grad(eager, ws, c)
        assert bench.max_abs(grad_c, grad_e) <= ATOL
        assert grad_e.abs().max() > 1e-3  # a gradient that can disagree
    else:
        with torch.no_grad():
            img_c = _compiles(lambda: compiled.synthesis(ws, c))
            img_e = eager.synthesis(ws, c)
    assert bench.max_abs(img_c, img_e) <= ATOL
    if official is not None:
        assert bench.max_abs(img_c, official) <= ATOL


def test_discriminator_features_match_eager(network):
    name, eager, compiled, ws, c, _ = network
    if not eager.has_discriminator:
        pytest.skip(f"{name} has no discriminator")
    if name not in WITH_D:
        pytest.skip(f"{name}: its D is compiled under GANPRIOR_TEST_COMPILE=all")
    assert is_compiled(compiled.D, "forward_with_features" if hasattr(compiled.D, "forward_with_features") else "forward")
    with torch.no_grad():
        img = eager.synthesis(ws, c)
        feats_c = _compiles(lambda: bench.discriminator_features(compiled, img))
        feats_e = bench.discriminator_features(eager, img)
    assert len(feats_c) == len(feats_e) > 0
    assert max(bench.max_abs(a, b) for a, b in zip(feats_c, feats_e)) <= ATOL


@pytest.mark.parametrize("network", [EMBEDDED], indirect=True)
def test_compiled_copy_keeps_keys_and_renders_its_own_weights(network):
    """State-dict keys unchanged; a deep copy (what pivotal tuning tunes) is still compiled, bound to
    the copy, reuses the compiled code and renders with the copy's weights. On emoji32 (always there)."""
    _, eager, compiled, ws, c, _ = network
    assert list(compiled.state_dict()) == list(eager.state_dict())
    tuned, reference = copy.deepcopy(compiled), copy.deepcopy(eager)
    with torch.no_grad():
        for prior in (tuned, reference):
            for p in prior.G.synthesis.parameters():
                p.mul_(1.1)
    assert is_compiled(tuned.G.synthesis) and tuned.G.synthesis.forward.__self__ is tuned.G.synthesis
    graphs = counters["stats"]["unique_graphs"]
    moved, before = bench.image_and_grad(tuned, ws, c)[0], bench.image_and_grad(compiled, ws, c)[0]
    assert counters["stats"]["unique_graphs"] == graphs  # the copy reuses the compiled code
    assert bench.max_abs(moved, before) > 1e-2  # the copy's own weights, not the original's
    assert bench.max_abs(moved, bench.image_and_grad(reference, ws, c)[0]) <= ATOL
