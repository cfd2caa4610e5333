"""`python -m bench <name> [args...]`: run one benchmark by name."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# Module paths, imported only when chosen: one bench's baseline library (python-libnmap, say)
# must not be needed to run another.
BENCHES: dict[str, str] = {
    "ingest": "bench.ingest",
    "nmap-parse": "bench.nmap_parse",
    "report": "bench.report",
    "overhead": "bench.overhead",
    "schedules": "bench.schedules",
    "start": "bench.start",
    "stream": "bench.stream",
    "ui": "bench.ui",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHES:
        print(f"usage: python -m bench {{{','.join(sorted(BENCHES))}}} [args...]", file=sys.stderr)
        return 2
    run: Callable[[list[str]], int] = importlib.import_module(BENCHES[argv[0]]).main
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
