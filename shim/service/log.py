"""The decision service's operational log (``bacon serve``): JSON lines on standard error, through structlog.

One JSON object a line, ``{"event": ..., <fields>, "level": ..., "time": <ISO 8601 UTC>}``, written and
flushed as one line, so that the service and its forked workers share the stream without tearing lines.
Under systemd, standard error goes to the journal (``journalctl -u bacon -o cat`` shows the lines as
written). The events:

- ``service started`` (uid, socket, pid, workers) and ``service stopped`` (signal);
- ``request`` (caller_pid, worker): a worker took a request;
- ``idle connection closed``: a connection sent no request in time (warning);
- ``decision failed`` (error: answered with an error other than a denial, with its exit code and message)
  and ``decision slow`` (warning: longer than :data:`SLOW_DECISION` seconds), from :func:`notable`;
- ``decision abandoned``: the caller left before taking up its plan (warning);
- ``worker exited`` (worker, status; a warning when not 0) and ``worker failed`` (an exception, error).

This is not the audit log (:mod:`shim.admission.audit`): the decisions themselves, admitted or denied, are audited
there, by the process that decides, in a format of its own. This log says how the service is doing.
Imported only by ``bacon serve`` (structlog is never loaded on the wrapper's forwarding path).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

import structlog

if TYPE_CHECKING:  # structlog.typing is 22.2's; the floor, 22.1, has the same type as structlog.types
    from structlog.typing import FilteringBoundLogger

    Log: TypeAlias = FilteringBoundLogger

SLOW_DECISION = 2.0  # seconds from a request to its answer above which the decision is logged as slow
DENIED = 77  # a policy's denial is a decision made, not a failure: audited, not logged here


def logger(stream: TextIO) -> Log:
    """A logger that writes JSON lines to ``stream`` (info and above)."""
    log: Log = structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    return log


def notable(seconds: float, exit_code: int | None) -> tuple[str, str] | None:
    """(level, event) for a decision that took ``seconds`` and answered with ``exit_code`` (None: a plan to
    carry out), or None when it is not worth a line: a failure before slowness, denials are not failures."""
    if exit_code is not None and exit_code != DENIED:
        return "error", "decision failed"
    if seconds > SLOW_DECISION:
        return "warning", "decision slow"
    return None


def decision(log: Log, seconds: float, exit_code: int | None, **fields: Any) -> None:
    """Log a decision if :func:`notable` says it is."""
    found = notable(seconds, exit_code)
    if found is not None:
        level, event = found
        getattr(log, level)(event, seconds=round(seconds, 3), exit_code=exit_code, **fields)
