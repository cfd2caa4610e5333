"""sslyze: a TLS service's certificates, protocol versions, cipher suites and known flaws."""

from __future__ import annotations
