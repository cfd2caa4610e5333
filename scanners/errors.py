"""The ways a scan request or a scanner's output can be unusable."""

from __future__ import annotations


class ParseError(Exception):
    """A tool's output is not something its parser can read (not truncation: that is `partial`)."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(tool, reason)
        self.tool = tool
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.tool}: {self.reason}"


class _FieldError(Exception):
    """A rejected request field, carrying the field's name and a reason a person can act on."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ConfigError(_FieldError):
    """A tool config is rejected; `field` is the offending key's path (`timing`, `scripts[1]`).

    Deliberately not a ValueError: msgspec rewraps ValueErrors raised in `__post_init__` into a
    ValidationError without the field name, and this one must reach the caller intact.
    """


class TargetError(_FieldError):
    """A scan target is malformed, of a kind the tool cannot scan, or outside the allowed scope."""


class RequestError(_FieldError):
    """A scan request field is rejected (unknown tool, too long a deadline, ...)."""


class OutOfScope(_FieldError):
    """A valid target that the deployment's scope (JETSCAN_SCOPE) does not allow."""


class Unsupported(_FieldError):
    """A valid request this deployment cannot run (a syn scan where raw sockets are off)."""
