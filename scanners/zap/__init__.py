"""OWASP ZAP, headless: spider, optional AJAX spider and active scan, run as an Automation
Framework plan; its traditional JSON (or XML) report read into findings."""

from __future__ import annotations
