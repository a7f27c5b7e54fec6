"""The web app of ``evolve demo``: one page, and a websocket per tab that streams its episode.

``GET /`` serves ``page.html`` (self-contained: inline script, no network). ``/ws`` gives
each tab its own :class:`~evolve.demo.session.DemoSession`, up to ``max_sessions`` at once;
a tab beyond that is told the demo is in use and the socket closes. Per tab, one task plays
(a step in a worker thread, the frame sent, a sleep for the speed) while another reads the
controls; a bad control gets an ``error`` message and the episode goes on.

Starlette and uvicorn come with the ``demo`` extra; they are imported inside the functions
so this module imports (and its package's doctests run) without them.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from evolve.demo.pages import read_page
from evolve.demo.session import ControlError, DemoSession
from sensoryneuron.policy import Policy

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger(__name__)

MAX_SESSIONS = 4  # tabs with an episode of their own at once
IDLE_POLL_S = 0.05  # how often a paused or ended episode looks for a control


def page() -> str:
    """The demo page, one HTML file."""
    return read_page("page.html")


def create_app(
    policy: Policy,
    env_id: str,
    *,
    label: str | None = None,
    seed: int = 0,
    max_sessions: int = MAX_SESSIONS,
    start_paused: bool = False,
    reshuffle_every: int = 0,
    baseline: Policy | None = None,
    baseline_label: str | None = None,
) -> Starlette:
    """The Starlette app that serves the demo of ``policy`` on ``env_id``.

    Args:
        policy: the agent.
        env_id: a vector task, or an image task for a vision policy.
        label: its name on the page (default: its architecture).
        seed: the first episode's seed (each tab starts there).
        max_sessions: tabs served at once; another is told the demo is in use.
        start_paused: each tab's episode waits for ``{"type": "pause", "on": false}`` or
            ``{"type": "step"}`` (for tests).
        reshuffle_every: each tab's first reshuffle schedule (0: off).
        baseline: a second agent that plays each tab's episode beside ``policy``, under
            the same shuffles (vector tasks); ``baseline_label`` its name on the page.
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    html = page()
    open_sessions = [0]

    async def index(request: Any) -> HTMLResponse:
        return HTMLResponse(html)

    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        if open_sessions[0] >= max_sessions:
            await ws.send_json(
                {"type": "busy", "message": f"the demo is in use ({max_sessions} tabs at once)"}
            )
            await ws.close(code=1013)  # try again later
            return
        open_sessions[0] += 1
        session: DemoSession | None = None
        lock = anyio.Lock()

        async def send(message: dict[str, Any]) -> None:
            async with lock:
                await ws.send_json(message)

        try:
            session = await anyio.to_thread.run_sync(
                lambda: DemoSession(
                    policy,
                    env_id,
                    seed=seed,
                    label=label,
                    reshuffle_every=reshuffle_every,
                    baseline=baseline,
                    baseline_label=baseline_label,
                )
            )
            session.settings.paused = start_paused
            await send(session.hello())
            async with anyio.create_task_group() as group:
                group.start_soon(_play, session, send)
                await _listen(ws, session, send)
                group.cancel_scope.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            open_sessions[0] -= 1
            if session is not None:
                session.close()

    async def _listen(ws: WebSocket, session: DemoSession, send: Any) -> None:
        """Applies controls until the tab goes away."""
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = message.get("bytes") or b""
            try:
                reply = await anyio.to_thread.run_sync(session.control, text)
            except ControlError as exc:
                await send({"type": "error", "message": str(exc)})
                continue
            except Exception as exc:  # a bug must not take the server down; the tab hears
                log.exception("demo control failed")
                await send({"type": "error", "message": f"internal error: {exc}"})
                continue
            if reply is not None:
                await send(reply)

    async def _play(session: DemoSession, send: Any) -> None:
        """Steps the episode at the chosen speed while it runs and is not paused."""
        announced = False  # the end message of the ended episode was sent
        while True:
            if session.ended:
                if not announced:
                    await send(session.step())
                    announced = True
                await anyio.sleep(IDLE_POLL_S)
                continue
            announced = False
            if session.settings.paused:
                await anyio.sleep(IDLE_POLL_S)
                continue
            start = time.perf_counter()
            try:
                message = await anyio.to_thread.run_sync(session.step)
            except Exception as exc:
                log.exception("demo step failed")
                session.settings.paused = True
                await send({"type": "error", "message": f"internal error, paused: {exc}"})
                continue
            await send(message)
            wait = 1.0 / session.settings.speed - (time.perf_counter() - start)
            await anyio.sleep(max(wait, 0.0))

    return Starlette(routes=[Route("/", index), WebSocketRoute("/ws", stream)])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one).

    Raises:
        OSError: the address cannot be bound (in use, no such host).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url(sock: socket.socket) -> str:
    """The page's address for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serves ``app`` on ``sock`` until Ctrl-C (uvicorn shuts down, closing the sockets)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", ws_max_size=1 << 16)
    uvicorn.Server(config).run(sockets=[sock])
