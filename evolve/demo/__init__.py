"""``evolve demo``: an agent's episode live in the browser, its inputs shuffled on request.

- :mod:`evolve.demo.session`: one tab's episode on the engine's loop, and its controls.
- :mod:`evolve.demo.app`: the Starlette app (the page and a websocket per tab) and the server.
"""
