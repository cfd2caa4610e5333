"""Logging, configured once per process: text for a terminal, or one JSON object per line
(`JETSCAN_LOG_FORMAT=json`) with the role, and the scan id and trace id where known."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import msgspec

from contracts import tracing

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The role whose task logs (set by `workers.roles.supervise`): under `jetscan up` one process
# runs them all, and each line still names its own.
role: contextvars.ContextVar[str] = contextvars.ContextVar("jetscan_role", default="")


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "role": role.get() or self.role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        scan = tracing.scan_id.get()
        if scan:
            line["scan_id"] = scan
        trace_id = tracing.current_trace_id()
        if trace_id:
            line["trace_id"] = trace_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def configure(level: str, fmt: str = "text", *, role: str = "jetscan") -> None:
    """Send the process's logs to stderr at `level`, as `fmt` (`text` or `json`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    # pgserver logs every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
