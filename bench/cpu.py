"""CPU time of the processes a bench starts, from Linux's /proc: the figure a shared machine
does not distort the way it distorts lines/s (each process's own time, not the wall)."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _table() -> dict[int, tuple[int, float, float]]:
    """Every process: pid -> (parent, own CPU s, CPU s of its waited-for children)."""
    out: dict[int, tuple[int, float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        own = (int(fields[11]) + int(fields[12])) / _TICK
        children = (int(fields[13]) + int(fields[14])) / _TICK
        out[int(entry.name)] = (int(fields[1]), own, children)
    return out


def sample(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named root and every process under it.

    A root's exited children count once waited for (a bench's worker processes); a name
    whose root is gone counts 0.
    """
    table = _table()
    kids: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        kids.setdefault(parent, []).append(pid)
    taken = set(roots.values())
    result: dict[str, float] = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            if pid not in table:
                continue
            _, own, children = table[pid]
            total += own + children
            # A named root under another (a role under the bench) counts under its own name.
            todo += [k for k in kids.get(pid, []) if k not in taken]
        result[name] = total
    return result


def postmaster(pgdata: Path) -> int:
    """The pid of the PostgreSQL server of `pgdata` (pg_ctl detaches it from its starter)."""
    for pid_file in pgdata.rglob("postmaster.pid"):
        return int(pid_file.read_text().splitlines()[0])
    raise FileNotFoundError(f"no postmaster.pid under {pgdata}")
