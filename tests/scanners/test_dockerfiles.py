"""Every scanner image: hadolint-clean, pinned, non-root, the worker runtime as entrypoint.

No Docker engine runs here, so the images are linted and read, not built. The Python packages
an image pins must be the versions uv.lock resolved, or the image would run code the tests
never ran.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scanners import TOOLS

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = sorted((ROOT / "scanners").glob("*/Dockerfile"))
_PIN = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)==(?P<version>[A-Za-z0-9_.+!-]+)")


def _locked() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_every_registered_tool_has_an_image() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= set(TOOLS)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_is_clean(path: Path) -> None:
    proc = subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_is_pinned_non_root_and_runs_the_worker(path: Path) -> None:
    steps = _instructions(path)
    froms = [args for word, args in steps if word == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        name = image.split()[0]
        assert "@sha256:" in name or re.search(r":\d[\w.-]*", name), f"unpinned base {name}"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image must end as a non-root user"
    entrypoint = [args for word, args in steps if word == "ENTRYPOINT"]
    assert entrypoint[-1] == '["python", "-m", "workers.job"]'


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_python_pins_match_the_lock(path: Path) -> None:
    locked = _locked()
    pins = [
        m.groupdict()
        for word, args in _instructions(path)
        if word == "RUN" and "pip install" in args
        for m in _PIN.finditer(args)
    ]
    assert pins, "the image installs the worker runtime's dependencies by exact version"
    for pin in pins:
        name = pin["name"].lower().replace("_", "-")
        assert locked.get(name) == pin["version"], f"{name}=={pin['version']} vs uv.lock"
