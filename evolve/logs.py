"""Logging: fixed-format lines through the ``evolve`` logger, to the console and train.log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def console(level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Log lines to the console (stderr at entry) for the duration of the block.

    The CLI's commands log through this; on exit the logger is as it was, so a caller that
    runs ``evolve.cli.main`` in-process (a test, a notebook) is not left with its handler.
    """
    logger = get_logger()
    before = (logger.level, logger.propagate)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    logger.setLevel(level)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]
