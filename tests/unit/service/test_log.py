"""`bacon serve`'s operational log (shim/service/log.py): JSON lines through structlog, and which decisions are
worth a line (failed ones: an error answer other than a denial; slow ones)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

from shim.service import log as servicelog


def test_a_line_is_one_json_object_with_level_and_utc_time() -> None:
    out = io.StringIO()
    log = servicelog.logger(out)
    log.info("service started", uid=0, socket="/run/bacon/decide.sock")
    log.debug("not written")  # below info
    [line] = out.getvalue().splitlines()
    e = json.loads(line)
    assert set(e) == {"event", "uid", "socket", "level", "time"}
    assert (e["event"], e["level"], e["uid"]) == ("service started", "info", 0)
    assert datetime.fromisoformat(e["time"]).utcoffset() == timedelta(0)


def test_which_decisions_are_notable() -> None:
    fast, slow = 0.01, servicelog.SLOW_DECISION + 0.5
    assert servicelog.notable(fast, None) is None  # a plan, in time
    assert servicelog.notable(fast, 77) is None  # a denial is a decision, audited, not a failure
    assert servicelog.notable(slow, None) == ("warning", "decision slow")
    assert servicelog.notable(slow, 77) == ("warning", "decision slow")
    for code in (64, 69, 70, 78):
        assert servicelog.notable(fast, code) == ("error", "decision failed")
        assert servicelog.notable(slow, code) == ("error", "decision failed")


def test_decision_logs_only_the_notable() -> None:
    out = io.StringIO()
    log = servicelog.logger(out)
    servicelog.decision(log, 0.01, None, caller_pid=1)
    servicelog.decision(log, 0.01, 70, caller_pid=2, message="bacon: internal error: X")
    servicelog.decision(log, servicelog.SLOW_DECISION * 2, None, caller_pid=3)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["caller_pid"], e["level"]) for e in events] == [
        ("decision failed", 2, "error"), ("decision slow", 3, "warning")]
    assert events[0]["message"] == "bacon: internal error: X"
    assert events[1]["seconds"] == round(servicelog.SLOW_DECISION * 2, 3)
