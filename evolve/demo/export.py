"""``evolve demo AGENT --export DIR``: one recorded episode as a page that plays without a server.

:func:`export` plays one episode through a :class:`~evolve.demo.session.DemoSession` (so
through the engine's loop, with the live demo's frame messages) and writes:

- ``DIR/frames/000123.jpg``: the env frame of step 123, written as it is produced (image
  tasks add ``000123-mosaic.jpg``, the patches the agent gets, and ``000123-attended.jpg``,
  the most attended patches on the true frame);
- ``DIR/data.js``: ``window.EPISODE = {...}``, the settings and each step's message without
  its images (a script, not JSON, so that it loads from ``file://`` where ``fetch`` cannot);
- ``DIR/index.html``: the player (``export.html``: inline script, relative paths only), with
  a slider, play/pause and the return and reward plot with the reshuffles marked.

Every file is written atomically (:func:`sensoryneuron.files.atomic_write`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from evolve.demo.pages import read_page
from evolve.demo.session import DemoSession, jpeg_bytes
from sensoryneuron.errors import ConfigError
from sensoryneuron.files import atomic_write, atomic_write_text
from sensoryneuron.policy import Policy

DEFAULT_STEPS = 500
DEFAULT_RESHUFFLE_EVERY = 100
IMAGE_KEYS = {"image": "", "mosaic": "-mosaic", "attended": "-attended"}  # field -> file suffix


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the page, the steps recorded and the episode's return."""

    page: Path
    steps: int
    episode_return: float
    ended: bool


def player() -> str:
    """The player page, one HTML file."""
    return read_page("export.html")


def check_folder(folder: str | os.PathLike) -> Path:
    """``folder``, made if absent, where files can be written.

    Raises:
        ConfigError: it is a file, cannot be made, or is not writable.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: not a folder (the export writes index.html and frames/ there)")
    try:
        (path / "frames").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot make the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK) or not os.access(path / "frames", os.W_OK):
        raise ConfigError(f"{path}: not writable")
    return path


def export(
    policy: Policy,
    env_id: str,
    folder: str | os.PathLike,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    reshuffle_every: int = DEFAULT_RESHUFFLE_EVERY,
    label: str | None = None,
) -> ExportResult:
    """Records up to ``steps`` steps of one episode of ``policy`` into ``folder``.

    Args:
        policy: the agent.
        env_id: a vector task, or an image task for a vision policy.
        folder: where the page, its data and its frames go (made if absent).
        steps: the most steps recorded (fewer if the episode ends first).
        seed: the episode seed.
        reshuffle_every: steps between reshuffles (0: shuffled at reset only).
        label: the agent's name on the page.

    Raises:
        ConfigError: a bad folder or setting, or a task the demo cannot show.
        StorageError: the storage refused a write.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an int >= 1, got {steps!r}")
    path = check_folder(folder)
    session = DemoSession(policy, env_id, seed=seed, label=label, reshuffle_every=reshuffle_every)
    records = []
    try:
        for _ in range(steps):
            message = session.step(images=True)
            if message["type"] == "end":
                break
            for key, suffix in IMAGE_KEYS.items():
                url = message.pop(key, None)
                if url is not None:
                    data = jpeg_bytes(url)
                    atomic_write(
                        path / "frames" / f"{message['t']:06d}{suffix}.jpg",
                        lambda f, data=data: f.write(data),
                        size=len(data),
                    )
            records.append(message)
        ended = session.ended
        end = session.step() if ended else None
        settings = session.hello()
        episode_return = session.episode_return
    finally:
        session.close()
    images = IMAGE_KEYS if settings["kind"] == "image" else {"image": IMAGE_KEYS["image"]}
    payload = {
        "settings": settings,
        "images": images,  # field -> the suffix of its files: frames/000123{suffix}.jpg
        "steps": records,
        "end": end,
    }
    script = "window.EPISODE = " + json.dumps(payload, separators=(",", ":")) + ";\n"
    atomic_write_text(path / "data.js", script)
    page = path / "index.html"
    atomic_write_text(page, player())
    return ExportResult(page, len(records), episode_return, ended)
