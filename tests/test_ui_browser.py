"""``ganprior ui`` in a real browser (headless Chromium driven by selenium), on the embedded model.

Upload a held-out emoji, paint a stroke, inpaint with CRI for 5 steps, check the downloaded result
(unchanged outside the stroke, changed inside), jitter it, then Stop a long run and check it ends
within seconds with a result. Screenshots go to ``$GANPRIOR_UI_SCREENSHOTS`` (docs/ui/ when making
the docs), else to the test's temporary folder. Skipped only when Chromium or its driver is absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (test extra)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium or chromedriver not installed (apt-get install -y chromium chromium-driver; .ci/run does it)")

STROKE_ROW = 0.45  # the stroke's height in the image, as a fraction
STROKE_COLS = (0.15, 0.85)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("ui-runs")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(out.parent / "ui-server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ganprior.cli.main", "ui", "--host", "127.0.0.1", "--port",
                             str(port), "--out", str(out)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"ganprior ui did not start: {(out.parent / 'ui-server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, out
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1500"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("GANPRIOR_UI_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shot(driver, directory: Path, name: str) -> None:
    """A small PNG of the page: the whole layout, downscaled and palette-quantised."""
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(height + 140, 900), 3200))
    raw = directory / f"{name}.raw.png"
    driver.save_screenshot(str(raw))
    height = driver.execute_script("return document.body.scrollHeight")
    with Image.open(raw) as im:
        im = im.convert("RGB").crop((0, 0, im.width, min(im.height, height + 20)))
        im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS).quantize(128).save(
            directory / f"{name}.png", optimize=True)
    raw.unlink()


def _wait(driver, condition, timeout: float, what: str):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def _status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def _set_number(driver, elem_id: str, value: int) -> None:
    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input")
    field.clear()
    field.send_keys(str(value))


def _image_rect(driver, size: tuple[int, int]) -> tuple[float, float, float]:
    """(left, top, on-screen pixels per image pixel) of the image in the editor canvas, relative to its centre."""
    zoom_text = driver.execute_script(  # the editor's zoom read-out, e.g. "1000%"
        "return [...document.querySelectorAll('#editor *')].map(e => e.textContent.trim())"
        ".find(t => /^[0-9]+%$/.test(t))")
    scale = int(zoom_text.strip("%")) / 100
    h, w = size
    return -w * scale / 2, -h * scale / 2, scale


def _paint_stroke(driver, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    """Drag the brush across the image; returns (row, (first col, last col)) in image pixels."""
    driver.find_element(By.CSS_SELECTOR, "#editor button[aria-label='Brush']").click()
    canvas = driver.find_elements(By.CSS_SELECTOR, "#editor canvas")[-1]
    left, top, scale = _image_rect(driver, size)
    h, w = size
    row, (c0, c1) = int(STROKE_ROW * h), (int(STROKE_COLS[0] * w), int(STROKE_COLS[1] * w))
    y = top + (row + 0.5) * scale
    chain = ActionChains(driver, duration=20)  # ms per pointer move (the default 250 makes a stroke slow)
    chain.move_to_element_with_offset(canvas, int(left + (c0 + 0.5) * scale), int(y))
    chain.click_and_hold()
    for col in [*range(c0 + 4, c1, 4), c1]:  # the brush joins the points; each move re-renders the canvas
        chain.move_to_element_with_offset(canvas, int(left + (col + 0.5) * scale), int(y))
    chain.release().perform()
    return row, (c0, c1)


def _downloaded(driver, name: str) -> np.ndarray:
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a[href]")]
    link = next(h for h in links if h and name in h)
    with urllib.request.urlopen(link, timeout=10) as response, Image.open(response) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _preview_shown(driver) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, "#preview img[src]"))


def test_paint_inpaint_compare_manipulate_and_stop(server, browser, shots, tmp_path):
    from ganprior.data.emoji import load_emoji_test

    started = time.perf_counter()
    url, runs = server
    test = load_emoji_test(32)
    clean = test.images[int(np.flatnonzero(test.labels == 1)[0])]
    Image.fromarray(clean).save(tmp_path / "held_out.png")
    browser.get(url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 30, "page")
    _shot(browser, shots, "1_empty")

    (tmp_path / "broken.png").write_bytes(b"this is not an image")  # shown in the page, the server lives on
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "broken.png"))
    _wait(browser, lambda d: _status(d).startswith("Error:") and "broken.png" in _status(d), 20, "upload error")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "held_out.png"))
    _wait(browser, lambda d: "Loaded" in _status(d), 20, "upload")
    time.sleep(0.5)  # the editor lays out the new image
    row, (c0, c1) = _paint_stroke(browser, clean.shape[:2])
    _shot(browser, shots, "2_mask_painted")

    _set_number(browser, "steps", 5)
    browser.find_element(By.ID, "run").click()
    pressed = time.perf_counter()
    _wait(browser, _preview_shown, 60, "first preview")
    first_preview = time.perf_counter() - pressed
    _wait(browser, lambda d: _status(d).startswith("Done"), 90, "result of the 5-step run")
    first_run = time.perf_counter() - pressed
    _shot(browser, shots, "4_result_comparison")

    mask_file = sorted(runs.glob("run-*/mask.png"))[-1]
    holes = np.asarray(Image.open(mask_file).convert("L")) < 128  # the mask restore received (white = observed)
    rows, cols = np.nonzero(holes)
    assert holes.any() and rows.min() >= row - 4 and rows.max() <= row + 4, "the holes are where the stroke went"
    assert cols.min() <= c0 + 1 and cols.max() >= c1 - 1 and holes[row, c0:c1 + 1].mean() > 0.9
    restored = _downloaded(browser, "restored.png")
    assert restored.shape == clean.shape
    diff = np.abs(restored - clean.astype(int))
    assert diff[~holes].max() <= 1, "pixels outside the stroke must be the input's"
    assert diff[holes].mean() > 5, "pixels inside the stroke must be restored, not copied"
    assert "Class:" in browser.find_element(By.ID, "summary").text
    assert browser.find_elements(By.CSS_SELECTOR, "#compare img")

    jitter_pressed = time.perf_counter()
    browser.find_element(By.ID, "jitter").click()
    _wait(browser, lambda d: "jitter:" in d.find_element(By.ID, "manip-status").text, 60, "jitter")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery img")) >= 6
    jitter_seconds = time.perf_counter() - jitter_pressed
    _shot(browser, shots, "5_manipulation_jitter")

    _set_number(browser, "steps", 400)
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: re.search(r"step (\d+)", _status(d)) and int(re.search(r"step (\d+)", _status(d))[1]) >= 12,
          60, "the long run's progress")
    _shot(browser, shots, "3_running_with_preview")
    browser.find_element(By.ID, "stop").click()
    stop_pressed = time.perf_counter()
    _wait(browser, lambda d: _status(d).startswith("Stopped"), 15, "the stopped run's result")
    stop_seconds = time.perf_counter() - stop_pressed
    assert stop_seconds < 5, f"Stop took {stop_seconds:.1f} s"
    assert "stopped on request" in browser.find_element(By.ID, "summary").text
    assert _downloaded(browser, "restored.png").shape == clean.shape

    timings = {"run_to_first_preview_s": round(first_preview, 2), "run_5_steps_to_result_s": round(first_run, 2),
               "jitter_s": round(jitter_seconds, 2), "stop_to_result_s": round(stop_seconds, 2),
               "test_body_s": round(time.perf_counter() - started, 1)}
    (shots / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(timings)
