"""The sslyze image installs its Python packages with --no-deps: the pins must be closed.

tests/scanners/test_dockerfiles.py checks each pin against uv.lock; this checks that every
dependency uv.lock records for a pinned package (on Linux CPython 3.11, the image's Python)
is pinned too, so the image runs exactly the code the tests ran and pip check passes.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "scanners" / "sslyze" / "Dockerfile"
_PIN = re.compile(r"([A-Za-z0-9_.-]+)==")
# The image: debian bookworm's CPython 3.11 on Linux.
_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "extra": "",
}


def _pins() -> set[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line for line in text.splitlines() if line.startswith("RUN pip install")]
    return {m.lower().replace("_", "-") for line in lines for m in _PIN.findall(line)}


def test_the_pins_include_sslyze_and_every_dependency_it_needs() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    dependencies = {p["name"]: p.get("dependencies", []) for p in lock["package"]}
    pins = _pins()
    assert {"sslyze", "nats-py", "msgspec", "defusedxml"} <= pins
    missing = {
        f"{name} needs {dep['name']}"
        for name in pins
        for dep in dependencies[name]
        if dep["name"] not in pins
        and Marker(dep.get("marker", "python_version >= '3'")).evaluate(_ENVIRONMENT)
    }
    assert not missing
    assert "--no-deps" in DOCKERFILE.read_text()
