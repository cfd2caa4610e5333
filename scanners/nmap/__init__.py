"""nmap: port and service discovery, with vulners for known CVEs in detected versions."""

from __future__ import annotations
