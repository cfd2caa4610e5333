"""A stand-in for `zap.sh`, which cannot be installed here, written as an executable script.

Called as the job calls ZAP (`zap.sh -cmd -silent -autorun <plan>`), it checks the plan with
`afplan.check_plan` and, like ZAP with an invalid plan, exits 1 naming the problems. A valid
plan is copied to `<dir>/plans/<pid>.yaml` for the test to read, and the report the plan asks
for is written from a corpus file. A plan whose target path contains `/hang` makes it ignore
SIGTERM and sleep, writing its pid to `<dir>/hung.pid`: a ZAP that never ends.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import ROOT

_SCRIPT = """#!{python}
import os, shutil, signal, sys, time
from pathlib import Path

import yaml

sys.path.insert(0, {root!r})
from tests.scanners.zap.afplan import check_plan

HOME = Path({home!r})
if sys.argv[1:4] != ["-cmd", "-silent", "-autorun"] or len(sys.argv) != 5:
    print(f"unexpected arguments: {{sys.argv[1:]}}", file=sys.stderr)
    sys.exit(3)
plan = yaml.safe_load(Path(sys.argv[4]).read_text())
errors = check_plan(plan)
if errors:
    for error in errors:
        print(f"Plan error: {{error}}")
    sys.exit(1)
(HOME / "plans").mkdir(exist_ok=True)
shutil.copy(sys.argv[4], HOME / "plans" / f"{{os.getpid()}}.yaml")
url = plan["env"]["contexts"][0]["urls"][0]
if "/hang" in url:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (HOME / "hung.pid").write_text(str(os.getpid()))
    print("Job spider started", flush=True)
    while True:
        time.sleep(60)
for job in plan["jobs"]:
    print(f"Job {{job['type']}} started", flush=True)
    print(f"Job {{job['type']}} finished", flush=True)
report = plan["jobs"][-1]["parameters"]
shutil.copy({report!r}, Path(report["reportDir"]) / report["reportFile"])
print("Automation plan succeeded!", flush=True)
"""


def write_standin(home: Path, report: Path) -> Path:
    """The stand-in as `home/zap.sh`, writing `report` as ZAP's report."""
    path = home / "zap.sh"
    text = _SCRIPT.format(python=sys.executable, root=str(ROOT), home=str(home), report=str(report))
    path.write_text(text)
    path.chmod(0o755)
    return path
