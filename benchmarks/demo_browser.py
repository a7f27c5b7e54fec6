"""`evolve demo` in headless Chromium: the frame rate its page reaches, and the README's screenshots.

For each agent, starts ``evolve demo AGENT`` in a subprocess, opens its page in the system
Chromium through Playwright (the ``browser`` extra), and:

- counts the frames the page draws over ``--seconds`` at the page's default speed (50 steps
  a second), then over 2 s of a fresh episode at the server's top speed (1,000 asked for);
  a frame is a step: the slots, the attention map and the reward plot for a vector task,
  the patch mosaics for an image task, the env's own picture at most 25 times a second;
- back at the default speed, clicks Shuffle and saves a screenshot while the RESHUFFLED
  banner shows (``videos/demo_<name>.png`` with ``--screenshots``); ``cartpole_vs_fnn``
  plays the feed-forward baseline beside the agent (``--compare fnn-baseline``).

One JSON file holds the figures (``--json``). Usage::

    python benchmarks/demo_browser.py --json benchmarks/results/demo_browser.json --screenshots
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "evolve"))
from test_demo_browser import chromium, demo_server  # noqa: E402  (one place for each)

AGENTS = {  # name -> evolve demo's arguments
    "cartpole": ["cartpole-swingup-harder"],
    "carracing": ["carracing"],
    "cartpole_vs_fnn": ["cartpole-swingup-harder", "--compare", "fnn-baseline"],
}

TOP_SPEED_SECONDS = 2.0  # shorter than a 1,000-step episode at the top speed

COUNT_FRAMES = """() => {
  window.__frames = 0;
  const draw = onFrame;
  onFrame = (frame) => { window.__frames += 1; draw(frame); };
}"""


def frames_per_second(page, seconds: float) -> float:
    start = page.evaluate("window.__frames")
    time.sleep(seconds)
    return (page.evaluate("window.__frames") - start) / seconds


def measure(agent: list[str], browser, seconds: float, shot: Path | None) -> dict:
    with demo_server(*agent) as url:
        page = browser.new_page(viewport={"width": 1040, "height": 980})
        page.goto(url)
        page.wait_for_function("Number(document.getElementById('step').textContent) >= 5")
        page.evaluate(COUNT_FRAMES)
        row = {"demo": " ".join(agent), "default_speed_fps": frames_per_second(page, seconds)}
        page.evaluate("send({type: 'speed', steps_per_second: 1000})")
        page.click("#reset")  # a fresh episode: at the top speed, one lasts a few seconds
        page.wait_for_function("Number(document.getElementById('step').textContent) < 50")
        row["top_speed_fps"] = frames_per_second(page, TOP_SPEED_SECONDS)
        page.evaluate("send({type: 'speed', steps_per_second: 50})")
        page.click("#reset")  # a fresh episode for the picture
        page.wait_for_function("Number(document.getElementById('step').textContent) < 20")
        page.wait_for_function("Number(document.getElementById('step').textContent) >= 250")
        page.click("#shuffle")
        page.wait_for_function("getComputedStyle($('banner')).visibility === 'visible'")
        if shot is not None:
            page.screenshot(path=str(shot), full_page=True)
            row["screenshot"] = str(shot.relative_to(ROOT))
        row["error_line"] = page.text_content("#error")
        page.close()
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--seconds", type=float, default=10.0, help="counting window")
    parser.add_argument("--screenshots", action="store_true", help="save videos/demo_*.png")
    parser.add_argument("agents", nargs="*", help=f"some of {', '.join(AGENTS)} (default: all)")
    args = parser.parse_args()
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        parser.error(f"unknown agents {unknown}: choose from {', '.join(AGENTS)}")
    args.agents = args.agents or list(AGENTS)
    path = chromium()
    if path is None:
        raise SystemExit("no Chromium: install Debian's chromium package (or set SN_CHROMIUM)")
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": list(os.getloadavg()),
        "browser": path,
        "runs": [],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        results["browser_version"] = browser.version
        for name in args.agents:
            if name == "carracing" and importlib.util.find_spec("Box2D") is None:
                print("carracing: skipped (no Box2D: pip install -e '.[box2d]')")
                continue
            shot = ROOT / "videos" / f"demo_{name}.png" if args.screenshots else None
            row = measure(AGENTS[name], browser, args.seconds, shot)
            results["runs"].append(row)
            print(json.dumps(row))
        browser.close()
    results["load_average_at_end"] = list(os.getloadavg())
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
