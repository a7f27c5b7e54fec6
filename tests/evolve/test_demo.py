"""`evolve demo`: the page, the websocket stream and its controls, through a real websocket
client (Starlette's TestClient), and the command's errors and shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")  # Starlette's TestClient
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from evolve.cli import main  # noqa: E402
from evolve.demo.app import create_app  # noqa: E402
from evolve.demo.session import ControlError, parse_control  # noqa: E402
from sensoryneuron.checkpoints import load_policy, load_reference_policy  # noqa: E402
from sensoryneuron.errors import ConfigError  # noqa: E402
from tasks.perturbations import BatchPerturbation  # noqa: E402

ENV_ID = "SensoryNeuron/CartPoleSwingUpHarder-v0"


@pytest.fixture(scope="module")
def policy():
    return load_policy("cartpole-swingup-harder")


def client(policy, **kwargs) -> TestClient:
    return TestClient(create_app(policy, ENV_ID, **kwargs))


def receive(ws, kind: str, limit: int = 1000) -> dict:
    """The next message of ``kind`` (frames in between are skipped)."""
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message in {limit}")


def control(ws, message: dict) -> dict:
    ws.send_text(json.dumps(message))
    return ws.receive_json()


def test_page_loads_with_its_controls(policy):
    with client(policy) as c:
        response = c.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for control_id in ("shuffle", "every", "noise", "realign", "reset", "pause", "speed"):
        assert f'id="{control_id}"' in response.text
    assert "http://" not in response.text and "https://" not in response.text  # no CDN
    # the drawing shared with the exported player is inlined, not left as its marker
    assert "function drawSlots" in response.text and ".slot small" in response.text
    assert "/* draw.js */" not in response.text and "/* draw.css */" not in response.text


def test_shuffle_changes_the_permutation_the_agent_gets(policy):
    with client(policy, start_paused=True) as c, c.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "settings" and hello["paused"]
        assert [s["name"] for s in hello["sensors"]] == ["x", "x_dot", "cos th", "sin th", "th_dot"]
        first = control(ws, {"type": "step"})
        assert first["type"] == "frame" and first["t"] == 0 and first["image"]
        assert control(ws, {"type": "shuffle"})["type"] == "settings"
        same = control(ws, {"type": "step"})  # the shuffle applies from the next observation
        assert same["permutation"] == first["permutation"] and not same["reshuffled"]
        new = control(ws, {"type": "step"})
        assert new["t"] == 2 and new["reshuffled"]
        assert new["permutation"] != first["permutation"]
        assert sorted(new["permutation"]) == list(range(5))
        assert np.array(new["attention"]).shape == (16, 5)
        assert new["sources"] == new["permutation"]  # no duplicates, no noise
        later = control(ws, {"type": "step"})
        assert later["permutation"] == new["permutation"] and not later["reshuffled"]


def actions(ws, steps: int, shuffle_at: set[int]) -> list[list[float]]:
    out = []
    for t in range(steps):
        if t in shuffle_at:
            control(ws, {"type": "shuffle"})
        frame = control(ws, {"type": "step"})
        assert frame["t"] == t
        out.append(frame["action"])
    return out


def test_realigned_state_gives_the_unshuffled_runs_actions(policy):
    steps, shuffles = 40, {3, 10, 11, 25}
    with client(policy, start_paused=True) as c:
        with c.websocket_connect("/ws") as ws:
            ws.receive_json()
            assert control(ws, {"type": "realign", "on": True})["realign"]
            realigned = actions(ws, steps, shuffles)
            assert control(ws, {"type": "realign", "on": False})["realign"] is False
            plain = actions(ws, steps, shuffles)
        with c.websocket_connect("/ws") as ws:
            ws.receive_json()
            never = actions(ws, steps, set())
    np.testing.assert_allclose(realigned, never, rtol=0, atol=1e-5)
    assert not np.allclose(plain, never, atol=1e-5)  # without realignment the state is lost


def test_bad_messages_get_errors_and_the_stream_goes_on(policy):
    bad = [
        "not json",
        "[1, 2]",
        json.dumps({"type": "reshuffle_every", "steps": -1}),
        json.dumps({"type": "noise", "channels": 10**9}),
        json.dumps({"type": "noise", "channels": "3"}),
        json.dumps({"type": "shuffle", "now": True}),
        json.dumps({"type": "launch"}),
        json.dumps({"type": "speed", "steps_per_second": float("nan")}),
        json.dumps({"type": "pause"}),
        json.dumps({"type": "step"}),  # not paused
        "x" * 10_000,
    ]
    with client(policy) as c, c.websocket_connect("/ws") as ws:
        ws.receive_json()
        control(ws, {"type": "speed", "steps_per_second": 1000})
        before = receive(ws, "frame")["t"]
        for text in bad:
            ws.send_text(text)
            assert receive(ws, "error")["message"]
        ws.send_bytes(b"\xff\xfe")
        assert "JSON" in receive(ws, "error")["message"]
        ts = [receive(ws, "frame")["t"] for _ in range(3)]
        assert ts[0] > before and ts == sorted(ts)
        settings = control(ws, {"type": "noise", "channels": 3})  # a good one still applies
        while settings["type"] != "settings":
            settings = ws.receive_json()
        assert settings["noise_channels"] == 3
        frame = receive(ws, "frame")
        assert len(frame["obs"]) == 8 and frame["sources"][-3:] == [-1, -1, -1]


def test_reshuffle_every_t_steps(policy):
    with client(policy, start_paused=True) as c, c.websocket_connect("/ws") as ws:
        ws.receive_json()
        assert control(ws, {"type": "reshuffle_every", "steps": 4})["reshuffle_every"] == 4
        frames = [control(ws, {"type": "step"}) for _ in range(13)]
    assert [f["t"] for f in frames if f["reshuffled"]] == [4, 8, 12]


def test_a_tab_beyond_the_limit_is_told_the_demo_is_in_use(policy):
    with client(policy, max_sessions=1, start_paused=True) as c:
        with c.websocket_connect("/ws") as first:
            assert first.receive_json()["type"] == "settings"
            with c.websocket_connect("/ws") as second:
                assert second.receive_json()["type"] == "busy"
            assert control(first, {"type": "step"})["type"] == "frame"
        with c.websocket_connect("/ws") as again:  # the first tab left: room again
            assert again.receive_json()["type"] == "settings"


def test_episode_end_and_reset(policy):
    with client(policy, start_paused=True) as c, c.websocket_connect("/ws") as ws:
        ws.receive_json()
        control(ws, {"type": "speed", "steps_per_second": 1000})
        control(ws, {"type": "pause", "on": False})
        end = receive(ws, "end", limit=2000)
        assert 0 < end["steps"] <= 1000
        settings = control(ws, {"type": "reset", "seed": 5})
        assert settings["type"] == "settings" and settings["seed"] == 5
        assert receive(ws, "frame")["t"] == 0


def test_duplicated_inputs_show_each_sensor_k_times(policy):
    with client(policy, start_paused=True) as c, c.websocket_connect("/ws") as ws:
        ws.receive_json()
        settings = control(ws, {"type": "duplicate", "copies": 2})
        assert settings["duplicate"] == 2 and settings["max_duplicate"] == 8
        frame = control(ws, {"type": "step"})
        assert len(frame["obs"]) == 10 and sorted(frame["sources"]) == sorted(list(range(5)) * 2)
        assert np.array(frame["attention"]).shape == (16, 10)
        for copies in (0, 9, "2", True):
            reply = control(ws, {"type": "duplicate", "copies": copies})
            assert reply == {
                "type": "error",
                "message": "duplicate: copies must be an integer in [1, 8]",
            }


@pytest.fixture(scope="module")
def fnn():
    return load_policy("fnn-baseline")


def test_a_baseline_plays_beside_the_agent_under_the_same_shuffles(policy, fnn):
    from evolve.demo.session import DemoSession

    session = DemoSession(policy, ENV_ID, seed=0, reshuffle_every=7, baseline=fnn)
    try:
        assert session.hello()["baseline"] == "feed-forward (FNN)"
        seen = set()
        for t in range(40):
            if t == 10:
                session.control('{"type": "shuffle"}')
            frame = session.step(images=t == 0)
            twin = session._baseline.view.perturbation
            np.testing.assert_array_equal(
                twin.permutations, session._view.perturbation.permutations
            )
            seen.add(tuple(frame["permutation"]))
            assert frame["baseline"]["image"] if t == 0 else frame["baseline"]["image"] is None
        assert len(seen) >= 5  # reshuffles at 7, 11, 14, 21, 28, 35 (the click at 11)
        assert frame["baseline"]["return"] > 0 and frame["baseline"]["action"] is not None
        with pytest.raises(ControlError, match=r"^the feed-forward policy takes exactly 5 inputs; "
                           r"2 noise channels and x1 duplicates make 7$"):  # fmt: skip
            session.control('{"type": "noise", "channels": 2}')
        assert session.settings.noise_channels == 0 and session.step()["t"] == 0
    finally:
        session.close()


def test_a_baseline_needs_a_vector_task_and_plays_live_only(policy, fnn, capsys):
    from evolve.demo.session import DemoSession

    with pytest.raises(ConfigError, match=r"^a baseline side by side needs a vector task"):
        DemoSession(load_policy("carracing"), "CarRacing-v3", baseline=fnn)
    assert main(["demo", "--compare", "fnn-baseline", "--export", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "evolve: error: --compare plays live only; an --export records one agent\n"


def test_parse_control_rejects_out_of_range_values():
    assert parse_control('{"type": "reset"}') == {"type": "reset"}
    with pytest.raises(ControlError, match=re.escape("noise: channels must be an integer")):
        parse_control('{"type": "noise", "channels": true}')
    with pytest.raises(ControlError, match=re.escape("unknown field(s) x; allowed: steps")):
        parse_control('{"type": "reshuffle_every", "steps": 3, "x": 1}')


def test_reshuffle_at_draws_from_the_episode_generator():
    pert = BatchPerturbation(5, shuffle=True)
    rngs = [np.random.default_rng(0)]
    pert.reset(np.zeros((1, 1, 5)), rngs)
    first = pert.permutations.copy()
    pert.reshuffle_at(2)
    pert.step(np.zeros((1, 1, 5)), rngs)
    assert not pert.reshuffled[0] and (pert.permutations == first).all()
    pert.step(np.zeros((1, 1, 5)), rngs)
    assert pert.reshuffled[0]
    rng = np.random.default_rng(0)
    rng.permutation(5)
    np.testing.assert_array_equal(pert.permutations[0], rng.permutation(5))
    pert.step(np.zeros((1, 1, 5)), rngs)  # no schedule after it: no further reshuffle
    assert not pert.reshuffled[0]
    with pytest.raises(Exception, match=re.escape("step must be an int >= 4, got 3")):
        pert.reshuffle_at(3)


def test_cli_errors_are_one_line_with_exit_code_2(policy, capsys, monkeypatch):
    assert main(["demo", "no-such-agent"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("evolve: error: no-such-agent: no such run folder") and err.count("\n") == 1
    )
    assert main(["demo", "--env-id", "CarRacing-v3"]) == 2  # a vector policy on images
    assert "with a vision policy only" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # the demo extra is missing
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[demo]'" in err and err.count("\n") == 1


def test_cli_serves_the_page_and_stops_on_ctrl_c():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolve", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        assert "listening on 127.0.0.1" in first
        url = re.search(r"http://\S+/", proc.stdout.readline()).group(0)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b'id="shuffle"' in response.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_episode(folder) -> dict:
    text = (folder / "data.js").read_text(encoding="utf-8")
    prefix = "window.EPISODE = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix) : -2])


def test_export_writes_a_page_that_plays_from_files(tmp_path, capsys):
    out = tmp_path / "export"
    args = ["demo", "--export", str(out), "--steps", "30", "--reshuffle-every", "10"]
    assert main(args) == 0
    assert "30 steps" in capsys.readouterr().out
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "://" not in page  # no server, no CDN
    for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not ref.startswith("/") and (out / ref).is_file(), ref
    episode = read_episode(out)
    steps = episode["steps"]
    assert [f["t"] for f in steps] == list(range(30))
    assert episode["images"] == {"image": ""}
    for f in steps:
        assert (out / "frames" / f"{f['t']:06d}.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG
        assert "image" not in f and len(f["obs"]) == 5
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{t:06d}.jpg" for t in range(30)]
    assert [f["t"] for f in steps if f["reshuffled"]] == [10, 20]
    changed = [t for t in range(1, 30) if steps[t]["permutation"] != steps[t - 1]["permutation"]]
    assert changed == [10, 20]
    assert episode["settings"]["reshuffle_every"] == 10


def test_export_into_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["demo", "--export", str(target)]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and err.count("\n") == 1
    assert main(["demo", "--steps", "5"]) == 2  # --steps is the export's
    assert "add --export DIR" in capsys.readouterr().err


def test_car_racing_streams_the_screen_the_patches_and_the_attended_patches(reference_path):
    pytest.importorskip("Box2D")
    policy = load_reference_policy(reference_path("carracing_pi"), name="carracing_pi")
    app = create_app(policy, "CarRacing-v3", start_paused=True)
    with TestClient(app) as c, c.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["kind"] == "image" and "checkerboard" in hello["backgrounds"]
        assert control(ws, {"type": "speed", "steps_per_second": 1})["type"] == "settings"
        frames = [control(ws, {"type": "step"}) for _ in range(2)]
        for frame in frames:
            for key in ("image", "mosaic", "attended"):
                assert frame[key].startswith("data:image/jpeg;base64,"), key
            assert sorted(frame["permutation"]) == list(range(256))
        control(ws, {"type": "shuffle"})
        same, new = control(ws, {"type": "step"}), control(ws, {"type": "step"})
        assert same["permutation"] == frames[0]["permutation"] and new["reshuffled"]
        assert new["permutation"] != frames[0]["permutation"]
        ws.send_text(json.dumps({"type": "noise", "channels": 2}))
        assert "image task" in receive(ws, "error")["message"]
        settings = control(ws, {"type": "occlude", "fraction": 0.5})
        assert settings["occlude"] == 0.5
        assert len(control(ws, {"type": "step"})["permutation"]) == 128
