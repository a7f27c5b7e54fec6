"""The demo's HTML pages, read from the package with their shared parts inlined."""

from __future__ import annotations

from importlib import resources

SHARED = ("draw.js", "draw.css")  # the slots and attention drawing, and its style


def read_page(name: str) -> str:
    """The page ``name`` (``page.html`` or ``export.html``), self-contained: each marker
    line ``/* FILE */`` of :data:`SHARED` replaced by that file."""
    files = resources.files("evolve.demo")
    page = files.joinpath(name).read_text(encoding="utf-8")
    for shared in SHARED:
        text = files.joinpath(shared).read_text(encoding="utf-8")
        page = page.replace(f"/* {shared} */", text, 1)
    return page
