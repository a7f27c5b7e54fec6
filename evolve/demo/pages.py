"""The demo's HTML pages, read from the package with their shared script inlined."""

from __future__ import annotations

from importlib import resources

SHARED_SCRIPT = "draw.js"  # the slots and attention drawing of both pages
MARKER = f"/* {SHARED_SCRIPT} */"


def read_page(name: str) -> str:
    """The page ``name`` (``page.html`` or ``export.html``), self-contained: the line
    :data:`MARKER` replaced by :data:`SHARED_SCRIPT`."""
    files = resources.files("evolve.demo")
    page = files.joinpath(name).read_text(encoding="utf-8")
    return page.replace(MARKER, files.joinpath(SHARED_SCRIPT).read_text(encoding="utf-8"), 1)
