"""Where the shared corpus's ZAP reports are, as the nmap corpus tests find nmap's.

`JETSCAN_CORPUS` (default `../shared/corpus` from the repository root) is read, never copied
in. A missing corpus fails: a parser that was silently not tested must not look green. Set
`JETSCAN_CORPUS=` (empty) to skip the corpus tests on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CORPUS_SETTING = os.environ.get("JETSCAN_CORPUS", "../shared/corpus")
CORPUS = (ROOT / CORPUS_SETTING).resolve() if CORPUS_SETTING else None
FILES = sorted(p for p in (CORPUS / "zap").glob("*") if p.is_file()) if CORPUS else []


def cases() -> list[Any]:
    """One pytest param per corpus file (or one that skips or fails, saying why)."""
    if CORPUS is None:
        return [pytest.param(None, id="corpus", marks=pytest.mark.skip(reason="JETSCAN_CORPUS=''"))]
    if not FILES:
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(path, id=path.name) for path in FILES]


def require(path: Path | None) -> Path:
    if path is None:
        pytest.fail(
            f"no zap/* under {CORPUS}: point JETSCAN_CORPUS at the corpus directory, "
            "or set it to empty to skip the corpus tests on purpose"
        )
    return path


def corpus_file(name: str) -> Path:
    if CORPUS is None:
        pytest.skip("JETSCAN_CORPUS=''")
    path = CORPUS / "zap" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: point JETSCAN_CORPUS at the corpus directory")
    return path
