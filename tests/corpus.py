"""The shared corpus of real scanner output, found the same way by every parser test.

It lives outside the repository (`JETSCAN_CORPUS`, default `../shared/corpus` from the
repository root) and is never copied in. A missing corpus fails the run: a parser that was
silently not tested must not look green. Set `JETSCAN_CORPUS=` (empty) to skip on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest

from contracts.findings import Finding
from scanners.errors import ParseError

ROOT = Path(__file__).resolve().parents[1]
_SETTING = os.environ.get("JETSCAN_CORPUS", "../shared/corpus")
CORPUS: Path | None = (ROOT / _SETTING).resolve() if _SETTING else None


def files(*tools: str, pattern: str = "*") -> list[Path]:
    """The corpus files of `tools` matching `pattern`, tool by tool, sorted within each."""
    if CORPUS is None:
        return []
    return [p for tool in tools for p in sorted((CORPUS / tool).glob(pattern)) if p.is_file()]


def all_files(tool: str) -> list[Path]:
    """Every corpus file of `tool`, for a test about the whole set; skipped with
    JETSCAN_CORPUS='', failed when there are none."""
    if CORPUS is None:
        pytest.skip("JETSCAN_CORPUS=''")
    return [require(p, f"{tool} files") for p in files(tool) or [None]]


def cases(*tools: str, pattern: str = "*") -> list[Any]:
    """One pytest param per corpus file, or one param that skips (corpus switched off) or
    fails in `require` (corpus missing). Ids are file names, `tool/name` for several tools."""
    if CORPUS is None:
        return [pytest.param(None, id="corpus", marks=pytest.mark.skip(reason="JETSCAN_CORPUS=''"))]
    found = files(*tools, pattern=pattern)
    if not found:
        return [pytest.param(None, id="corpus-missing")]
    several = len(tools) > 1
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}" if several else p.name) for p in found]


def snapshot_names(*tools: str, pattern: str = "*", with_tool: bool = False) -> list[str]:
    """The snapshot file name of every corpus file of `tools` (`name.json`, or
    `tool__name.json` when several tools share a directory), for the orphan check."""
    if CORPUS is None:
        pytest.skip("JETSCAN_CORPUS=''")
    found = files(*tools, pattern=pattern)
    if not found:
        require(None, "/".join(tools) + " files")
    return [f"{p.parent.name}__{p.name}.json" if with_tool else f"{p.name}.json" for p in found]


def require(path: Path | None, what: str) -> Path:
    """`path` from `cases`; a missing corpus (None) fails, naming `what` was looked for."""
    if path is None:
        pytest.fail(
            f"no {what} under {CORPUS}: point JETSCAN_CORPUS at the corpus directory, "
            "or set it to empty to skip the corpus tests on purpose"
        )
    return path


def corpus_file(relative: str) -> Path:
    """A corpus file by `tool/name`; skipped with JETSCAN_CORPUS='', failed when missing."""
    if CORPUS is None:
        pytest.skip("JETSCAN_CORPUS=''")
    path = CORPUS / relative
    if not path.exists():
        pytest.fail(f"{path} is missing: point JETSCAN_CORPUS at the corpus directory")
    return path


def summary_or_error(
    parse: Callable[[bytes], Any], summary: Callable[[Any], dict[str, Any]], data: bytes
) -> dict[str, Any]:
    """What a snapshot records of `data`: the summary of its parse, or why it was refused."""
    try:
        return summary(parse(data))
    except ParseError as exc:
        return {"parse_error": exc.reason}


def snapshot_bytes(document: Any) -> bytes:
    """A snapshot document as stored: sorted keys, indented, one trailing newline."""
    return msgspec.json.format(msgspec.json.encode(document, order="sorted"), indent=1) + b"\n"


def assert_streams_and_survives_the_bus(
    path: Path,
    parse: Callable[[bytes], Any],
    parse_stream: Callable[[IO[bytes]], Any],
    output_type: Any,
) -> None:
    """Parsing `path` streamed gives what parsing its bytes does, the result encodes and
    decodes back to the same JSON, every finding decodes alone, and fingerprints are unique."""
    with path.open("rb") as stream:
        streamed = parse_stream(stream)
    assert streamed == parse(path.read_bytes())
    wire = msgspec.json.encode(streamed)
    assert msgspec.json.encode(msgspec.json.decode(wire, type=output_type)) == wire
    for finding in msgspec.json.decode(wire, type=dict[str, Any])["findings"]:
        msgspec.convert(finding, Finding)
    assert len({f.fingerprint for f in streamed.findings}) == len(streamed.findings)
