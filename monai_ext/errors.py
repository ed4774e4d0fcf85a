"""Errors caused by the user's files, and how a bundle run reports them: one short line naming the
file and the problem instead of a chained traceback.

Inside ``python -m monai.bundle run`` an exception raised by a transform reaches the terminal
wrapped several times (``applying transform ...``, a DataLoader worker's re-raise, ``Failed to
evaluate ConfigExpression``), so the useful sentence ends a traceback of a few hundred lines.
:class:`InputError` marks the exceptions whose message is meant for the user, and
:func:`report_input_errors` (the first ``initialize`` item of every config) installs a
``sys.excepthook`` that prints only that message when such an error ends the run. Other
exceptions, which are bugs, keep their full traceback, as does every error with ``--debug true``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = [
    "InputError",
    "InputFileNotFoundError",
    "CheckpointError",
    "NonFiniteLossError",
    "input_error_message",
    "report_input_errors",
]


class InputError(ValueError):
    """A user's file or argument cannot be used; the message names the file and the problem."""


class InputFileNotFoundError(InputError, FileNotFoundError):
    """A file the user named does not exist."""


class CheckpointError(InputError):
    """A checkpoint file is missing, empty, truncated or does not fit the network."""


class NonFiniteLossError(InputError):
    """The training loss became NaN or infinite; the message names the pair's files."""


# A DataLoader worker re-raises an exception as ``type(msg)`` where msg holds the worker's formatted
# traceback, in which the original error appears as a line ``monai_ext.errors.InputError: message``.
_FORMATTED = re.compile(
    r"^monai_ext\.errors\.(?:InputError|InputFileNotFoundError|CheckpointError|NonFiniteLossError): (.+)$",
    re.MULTILINE,
)


def input_error_message(exc: BaseException) -> str | None:
    """The message of the :class:`InputError` behind ``exc`` (found through ``__cause__`` /
    ``__context__`` and in the text of worker re-raises), or None when the chain holds none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InputError):
            found = str(current)
        else:
            matches = _FORMATTED.findall(str(current))
            if matches:
                found = matches[-1]
        current = current.__cause__ or current.__context__
    return found


def _short_input_error_records(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A log record factory that logs an :class:`InputError` as its message only, without traceback:
    ignite's engines and MONAI's ``StatsHandler`` log the exception that stops a run (with its
    traceback, under a wrapper's message such as ``applying transform <...>``) before it reaches
    ``sys.excepthook``, through handlers of their own."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if record.exc_info and record.exc_info[1] is not None:
            message = input_error_message(record.exc_info[1])
            if message is not None:
                wrapper = str(record.exc_info[1])
                record.exc_info, record.exc_text = None, None
                if not record.args and isinstance(record.msg, str):
                    record.msg = record.msg.replace(wrapper, message) if wrapper else record.msg
        return record

    factory._input_error_factory = True  # type: ignore[attr-defined]
    return factory


def report_input_errors(debug: bool = False, user_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Make an uncaught :class:`InputError` end the process with ``error: <message>`` (exit status 1)
    and no traceback, and keep its traceback out of the log's records; with ``debug`` tracebacks
    are printed as usual. Other exceptions are printed by the previous hook, unchanged.

    ``user_errors``: further exception types reported the same way, for a command whose errors of
    those types all concern the user's data (``data_prep``'s converters raise ``ValueError`` /
    ``OSError`` naming the file)."""
    if not debug and not getattr(logging.getLogRecordFactory(), "_input_error_factory", False):
        logging.setLogRecordFactory(_short_input_error_records(logging.getLogRecordFactory()))
    previous = sys.excepthook
    if getattr(previous, "_input_error_hook", False):
        previous = previous._previous  # type: ignore[attr-defined]

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        message = None if debug else input_error_message(exc)
        if message is None and not debug and isinstance(exc, user_errors):
            message = str(exc)
        if message is None:
            previous(exc_type, exc, tb)
            return
        print(f"error: {message}\n(run again with --debug true for the full traceback)", file=sys.stderr)
        # End the process here. A data loader's worker threads may still be inside native code
        # (MONAI's CacheDataset fills its cache from a thread pool), and finalising the interpreter
        # under them can abort it ("terminate called without an active exception", status -6)
        # instead of exiting with status 1. Outputs are written atomically, so none is left half-made.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(1)

    hook._input_error_hook = True  # type: ignore[attr-defined]
    hook._previous = previous  # type: ignore[attr-defined]
    sys.excepthook = hook
