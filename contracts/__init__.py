"""Message shapes, subjects and settings shared by every jetscan process (the import leaf)."""

from __future__ import annotations

VERSION = "0.1.0"
