"""`evolve demo` in a real browser: headless Chromium, driven by Playwright, clicks Shuffle.

Needs the ``browser`` extra (Playwright's Python package) and a Chromium on the machine
(Debian's ``chromium`` package; ``.ci/run`` installs it where it runs as root with apt).
Playwright drives that browser; it downloads none of its own. Skipped where either is
missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")


def chromium() -> str | None:
    """The system Chromium (``SN_CHROMIUM`` if set)."""
    names = [os.environ.get("SN_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((path for path in map(shutil.which, filter(None, names)) if path), None)


pytestmark = pytest.mark.skipif(chromium() is None, reason="no Chromium on this machine")


@contextmanager
def demo_server(*args: str) -> Iterator[str]:
    """``evolve demo ARGS`` in a subprocess on a free port: its URL; Ctrl-C at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolve", "demo", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    try:
        proc.stdout.readline()  # "listening on 127.0.0.1 ..."
        yield re.search(r"http://\S+/", proc.stdout.readline()).group(0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def demo_url():
    """The shipped cart-pole agent's demo."""
    with demo_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def slot_sensors(page) -> list[str]:
    """The sensor each input slot shows, in the order the agent gets them."""
    return page.eval_on_selector_all("#slots .slot", "els => els.map((e) => e.title)")


def slot_colours(page) -> list[str]:
    return page.eval_on_selector_all("#slots .slot", "els => els.map((e) => e.style.background)")


def number(page, selector: str) -> float:
    return float(page.text_content(selector))


def test_a_click_on_shuffle_recolours_the_slots_and_the_return_keeps_growing(
    demo_url, browser, tmp_path
):
    page = browser.new_page(viewport={"width": 1040, "height": 900})
    page.goto(demo_url)
    page.wait_for_function("Number(document.getElementById('step').textContent) >= 20")
    sensors, colours = slot_sensors(page), slot_colours(page)
    assert sorted(sensors) == sorted(["x", "x_dot", "cos th", "sin th", "th_dot"])
    assert len(set(colours)) == 5  # one colour per sensor
    for _ in range(5):  # a new permutation may, rarely, be the old one
        page.click("#shuffle")
        step = number(page, "#step")
        page.wait_for_function(f"Number(document.getElementById('step').textContent) >= {step + 5}")
        if slot_sensors(page) != sensors:
            break
    after = slot_sensors(page)
    assert after != sensors and sorted(after) == sorted(sensors)
    # each sensor keeps its colour; the slots' colours move with the sensors
    colour_of = dict(zip(sensors, colours, strict=True))
    assert slot_colours(page) == [colour_of[s] for s in after]
    first = number(page, "#return")
    step = number(page, "#step")
    page.wait_for_function(f"Number(document.getElementById('step').textContent) >= {step + 30}")
    assert number(page, "#return") > first > 0
    assert page.text_content("#error") == ""
    page.screenshot(path=str(tmp_path / "demo.png"))
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    page.close()
