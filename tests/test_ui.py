"""The UI's server side without a browser: bad input becomes a message in the page (never an
exception), the painted mask is what ``restore`` gets, one job at a time per device, Stop keeps a result."""

from __future__ import annotations

import re
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch

from ganprior.ui.handlers import Studio
from ganprior.ui.inputs import UIInputError, compose_task, editor_value, read_editor, restore_inputs
from ganprior.ui.jobs import DeviceQueue, Job
from test_methods import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GANPRIOR_OFFLINE", "1")  # perceptual 'auto' -> the tiny model's discriminator


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(tiny_prior(c_dim=3, discriminator=True), "tiny", tmp_path_factory.mktemp("runs"))


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG that claims ``width x height`` (a few bytes; decoding it would need gigabytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _image(h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_unreadable_and_huge_uploads_are_messages_in_the_page(studio, tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"not an image at all")
    editor, reference, status = studio.load_file(str(bad))
    assert editor is None and reference is None and status.startswith("**Error:**") and "photo.png" in status
    huge = tmp_path / "huge.png"
    _png_header_only(huge, 30000, 30000)
    editor, _, status = studio.load_file(str(huge))
    assert editor is None and status.startswith("**Error:**") and "900000000" in status.replace(",", "")


def test_the_painted_layer_is_exactly_the_mask_restore_receives():
    mask = np.ones((20, 30), np.float32)
    mask[5:9, 3:25] = 0
    value = editor_value(_image(20, 30), mask)
    observation, received = restore_inputs(value, "inpaint")
    assert observation.shape == (1, 3, 20, 30) and torch.equal(received[0, 0], torch.from_numpy(mask))
    antialiased = dict(value, layers=[value["layers"][0].copy()])
    antialiased["layers"][0][12, 12, 3] = 7  # any paint at all is a hole
    assert read_editor(antialiased)[1][12, 12] == 0


@pytest.mark.parametrize("case, message", [
    ("empty mask", "the mask is empty"),
    ("outside", "outside the 32x32 image"),
    ("mask without inpaint", "has no inpainting"),
    ("no image", "no image"),
    ("no task", "choose at least one task"),
])
def test_bad_input_is_a_clear_message_and_nothing_runs(studio, case, message):
    value, tasks = editor_value(_image()), ["inpaint"]
    if case == "outside":  # a layer bigger than the image, painted only beyond its edge
        layer = np.zeros((40, 40, 4), np.uint8)
        layer[35:, :, 3] = 255
        value["layers"] = [layer]
    elif case == "mask without inpaint":
        mask = np.ones((32, 32), np.float32)
        mask[:4] = 0
        value, tasks = editor_value(_image(), mask), ["colorize"]
    elif case == "no image":
        value = None
    elif case == "no task":
        tasks = []
    updates = list(studio.run("s", value, tasks, 4, "cri", "paper", 3, 0, -1, None))
    assert len(updates) == 1 and updates[0]["status"].startswith("**Error:**") and message in updates[0]["status"]
    assert not list(studio.root.glob("run-*"))


def test_tasks_compose_with_inpainting_last():
    assert compose_task(["inpaint", "colorize", "sr"], 2) == "sr2+colorize+inpaint"
    with pytest.raises(UIInputError, match="unknown task"):
        compose_task(["sharpen"])


def test_a_run_reports_progress_saves_scores_and_zips(studio):
    image = _image()
    mask = np.ones((32, 32), np.float32)
    mask[10:20, 10:20] = 0
    updates = list(studio.run("s", editor_value(image, mask), ["inpaint"], 4, "cri", "paper", 6, 0, 1, image))
    progress, final = updates[1:-1], updates[-1]
    assert any("preview" in u for u in progress) and all("step" in u["status"] for u in progress)
    assert final["status"].startswith("Done"), final["status"]
    restored, archive = final["downloads"]
    assert archive.endswith(".zip") and "psnr_hole" in final["summary"] and "Class:** 1" in final["summary"]
    from PIL import Image

    out = np.asarray(Image.open(restored).convert("RGB"))
    assert (out[mask > 0] == image[mask > 0]).all() and (out[mask == 0] != image[mask == 0]).any()


def test_one_job_at_a_time_and_the_second_is_told_it_waits():
    device, order, release = DeviceQueue(), [], threading.Event()

    def first(_callback):
        order.append("first starts")
        release.wait(10)
        order.append("first ends")

    a = Job(device, first).start()
    while device.running is None:
        time.sleep(0.01)
    b = Job(device, lambda _callback: order.append("second runs")).start()
    time.sleep(0.2)
    assert "Device busy" in device.busy_message() and order == ["first starts"]
    release.set()
    a.thread.join(5)
    b.thread.join(5)
    assert order == ["first starts", "first ends", "second runs"] and device.busy_message() is None


def test_stop_ends_the_run_with_its_best_result(studio):
    image = _image()
    mask = np.ones((32, 32), np.float32)
    mask[:8] = 0
    runs = studio.run("stopper", editor_value(image, mask), ["inpaint"], 4, "cri", "paper", 5000, 0, 0, None)
    for update in runs:
        step = re.search(r"step (\d+)", update["status"])
        if step and int(step[1]) >= 3:
            studio.stop("stopper")
    final = update
    assert final["status"].startswith("Stopped") and "stopped on request" in final["summary"]
    assert studio.stop("stopper") == "Nothing is running in this page."


def test_cli_errors_name_the_option(tmp_path):
    pytest.importorskip("gradio", reason="the ui extra is not installed")
    import socket

    from click.testing import CliRunner

    from ganprior.cli.main import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(cli, ["ui", "--port", str(port)])
    assert busy.exit_code == 2 and f"--port {port}" in busy.output and "in use" in busy.output
    missing = CliRunner().invoke(cli, ["ui", "--model", str(tmp_path / "nope.pkl"), "--port", str(port)])
    assert missing.exit_code == 1 and "nope.pkl" in missing.output and "Traceback" not in missing.output


def test_presets_and_simulated_degradation_fill_the_editor(studio):
    from ganprior.degradations import center_box_mask

    value = editor_value(_image())
    centre, status = studio.mask_preset(value, "center", "")
    assert "hole pixels" in status
    assert np.array_equal(read_editor(centre)[1], center_box_mask((32, 32))[0, 0].numpy())
    boxed, _ = studio.mask_preset(value, "box", "4,6,10,12")
    assert (read_editor(boxed)[1] == 0).sum() == 6 * 6
    unchanged, status = studio.mask_preset(value, "box", "4,6")
    assert unchanged is value and status.startswith("**Error:**")
    small, status = studio.degrade(value, ["sr", "inpaint"], 4, 0)
    assert small["background"].shape == (8, 8, 3) and "sr4" in status
    _, status = studio.degrade(value, ["inpaint"], 4, 0)
    assert status.startswith("**Error:**")


def test_manipulations_start_from_the_finished_restoration(studio):
    image = _image()
    mask = np.ones((32, 32), np.float32)
    mask[8:16] = 0
    result = list(studio.run("m", editor_value(image, mask), ["inpaint"], 4, "cri", "paper", 3, 0, 2, None))[-1]
    images, status = studio.manipulate("jitter", result["state"], n=3, std=0.3, seed=0)
    assert len(images) == 3 and status.startswith("jitter")
    images, status = studio.manipulate("transfer", result["state"], classes=[0, 1])
    assert len(images) == 2 and status.startswith("transfer")
    images, status = studio.manipulate("morph", result["state"], other=_image(), frames=4, method="cri", steps=3,
                                       seed=0)
    assert len(images) == 4 and status.startswith("morph"), status
    images, status = studio.manipulate("jitter", None, n=3, std=0.3, seed=0)
    assert images is None and "run a restoration first" in status


def test_warnings_of_the_run_are_shown_with_its_result(studio):
    colourful = np.zeros((32, 32, 3), np.uint8)
    colourful[..., 0] = 255
    final = list(studio.run("w", editor_value(colourful), ["colorize"], 4, "wplus", "paper", 2, 0, 0, None))[-1]
    assert final["status"].startswith("Done") and "**Note:**" in final["summary"] and "colour" in final["summary"]


def test_a_page_that_goes_away_stops_its_run(studio):
    mask = np.ones((32, 32), np.float32)
    mask[:8] = 0
    updates = studio.run("gone", editor_value(_image(), mask), ["inpaint"], 4, "cri", "paper", 5000, 0, 0, None)
    next(u for u in updates if "step" in u["status"])
    updates.close()  # what Gradio does when the browser tab closes
    job = studio.jobs["gone"]
    job.thread.join(20)
    assert not job.thread.is_alive() and job.result[0].result.interrupted


def test_samples_give_a_gallery_and_overlay_views(studio):
    image = _image()
    mask = np.ones((32, 32), np.float32)
    mask[8:20, 8:20] = 0
    final = list(studio.run("k", editor_value(image, mask), ["inpaint"], 4, "cri", "official", 4, 0, 1, image, 3))[-1]
    assert final["status"].startswith("Done"), final["status"]
    assert len(final["samples"]) == 3 and set(final["views"]) == {"none", "uncertainty", "hallucination"}
    assert any(path.endswith("samples_sheet.png") for path in final["downloads"])
    inside, outside = mask == 0, mask > 0
    big = final["views"]["uncertainty"].shape[0] // 32  # displays are enlarged by a whole factor
    shown = final["views"]["uncertainty"][::big, ::big].astype(int)
    plain = final["views"]["none"][::big, ::big].astype(int)
    assert (shown[outside] == plain[outside]).all() and (shown[inside] != plain[inside]).any()
    bad = list(studio.run("k", editor_value(image, mask), ["inpaint"], 4, "cri", "official", 4, 0, 1, image, 0))
    assert "Samples must be a whole number" in bad[-1]["status"]
