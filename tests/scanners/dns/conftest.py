"""Shared pieces of the dns tests: the tests' DNS server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scanners.dns.zone import ZoneServer


@pytest.fixture(scope="module")
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as server:
        yield server
