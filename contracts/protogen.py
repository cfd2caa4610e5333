"""Regenerate contracts/gen from contracts/proto: `python -m contracts.protogen [OUT]`.

Generated code is committed and never edited; a test regenerates into a temporary folder
and fails when the result differs from what is committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PROTO = ROOT / "proto"
GEN = ROOT / "gen"
OPTIONS = "client_generation=async,server_generation=async,google_protobuf_descriptors"


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    bindir = str(Path(sys.executable).parent)
    # protoc finds the betterproto2 plugin only on PATH.
    env = {"PATH": bindir + os.pathsep + "/usr/bin:/bin"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"--python_betterproto2_out={out}",
            f"--python_betterproto2_opt={OPTIONS}",
            *files,
        ],
        check=True,
        env=env,
        cwd=PROTO,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [bindir + "/ruff", "format", "--quiet", "--no-respect-gitignore", "--isolated", str(out)],
        check=True,
    )


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else GEN
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(tmp, target)


if __name__ == "__main__":
    main()
