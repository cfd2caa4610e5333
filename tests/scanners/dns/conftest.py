"""Shared pieces of the dns tests: the corpus location and the tests' DNS server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scanners.dns.zone import ZoneServer

REPO = Path(__file__).resolve().parents[3]
CORPUS_SETTING = os.environ.get("JETSCAN_CORPUS", "../shared/corpus")
CORPUS = (REPO / CORPUS_SETTING).resolve() if CORPUS_SETTING else None


def corpus_file(relative: str) -> Path:
    """A corpus file by `tool/name`; skipped with JETSCAN_CORPUS='', failed when missing."""
    if CORPUS is None:
        pytest.skip("JETSCAN_CORPUS=''")
    path = CORPUS / relative
    if not path.exists():
        pytest.fail(f"{path} is missing: point JETSCAN_CORPUS at the corpus directory")
    return path


@pytest.fixture(scope="module")
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as server:
        yield server
