"""`jetscan nats-credentials DIR`: the keys once, every role's user anew, the server config."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from contracts.settings import ROLES
from handlers import natsauth
from tests.conftest import run_jetscan


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "JETSCAN_HOME": str(tmp_path)}


async def test_the_setup_step_makes_private_keys_once_and_users_every_time(tmp_path: Path) -> None:
    out_dir = tmp_path / "nats-auth"
    code, out, err = await run_jetscan(_env(tmp_path), "nats-credentials", str(out_dir))
    assert code == 0, err
    written = set(out.split())
    for role in (*ROLES, "admin"):
        assert str(out_dir / "creds" / f"{role}.creds") in written
    # No user shared by every scan job: each job's is signed for it alone.
    assert str(out_dir / "creds" / "job-signer.json") in written
    assert not (out_dir / "creds" / "scan-jobs.creds").exists()
    for path in out_dir.rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path
    account = (out_dir / "keys" / "account.nk").read_text()
    edge = (out_dir / "creds" / "edge.creds").read_text()
    claims = natsauth.decode_claims(natsauth.creds_jwt(edge))
    assert claims["name"] == "jetscan-edge" and claims["nats"]["type"] == "user"
    assert "cmd.>" in claims["nats"]["pub"]["allow"]

    code, _, err = await run_jetscan(_env(tmp_path), "nats-credentials", str(out_dir))
    assert code == 0, err
    assert (out_dir / "keys" / "account.nk").read_text() == account
    assert (out_dir / "creds" / "edge.creds").read_text() != edge
    # Both users belong to the one account the server preloads.
    again = natsauth.decode_claims(natsauth.creds_jwt((out_dir / "creds/edge.creds").read_text()))
    assert again["iss"] == claims["iss"]
    values = yaml.safe_load((out_dir / "nats-values-auth.yaml").read_text())
    merge = values["config"]["merge"]
    assert merge["resolver"] == "<< MEMORY >>"
    assert claims["iss"] in merge["resolver_preload"]
    assert merge["operator"] in (out_dir / "auth.conf").read_text()
