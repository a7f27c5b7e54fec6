"""Logging: fixed-format lines through the ``evolve`` logger, to the console and train.log."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sensoryneuron.files import storage_error

LOGGER_NAME = "evolve"
FORMAT = "%(asctime)s %(message)s"
DATE_FORMAT = "%H:%M:%S"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


class _RunLogHandler(logging.FileHandler):
    """``train.log``. A write the storage refuses (a full disk) stops this file, with one
    warning on the console, instead of a traceback per line; the checkpoints report their
    own failures (:class:`~sensoryneuron.errors.StorageError`)."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError) or self.failed:
            super().handleError(record)
            return
        self.failed = True
        get_logger().warning(
            "%s; the log goes on on the console only", storage_error(exc, self.baseFilename)
        )


def attach_file(run_dir: Path) -> logging.Handler:
    """Also write the log to ``run_dir/train.log`` (appending across resumes).

    Raises:
        StorageError: ``train.log`` cannot be opened for writing.
    """
    path = run_dir / "train.log"
    try:
        handler = _RunLogHandler(path, encoding="utf-8")
    except OSError as exc:
        raise storage_error(exc, path, action="open") from exc
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
