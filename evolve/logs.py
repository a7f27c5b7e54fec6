"""Logging: fixed-format lines through the ``evolve`` logger, to the console and train.log."""

from __future__ import annotations

import logging
from pathlib import Path

LOGGER_NAME = "evolve"
FORMAT = "%(asctime)s %(message)s"
DATE_FORMAT = "%H:%M:%S"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def attach_file(run_dir: Path) -> logging.Handler:
    """Also write the log to ``run_dir/train.log`` (appending across resumes)."""
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    get_logger().addHandler(handler)
    return handler


def setup_console(level: int = logging.INFO) -> None:
    """Console output for the CLI (idempotent)."""
    logger = get_logger()
    logger.setLevel(level)
    if not any(getattr(h, "_evolve_console", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        handler._evolve_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
