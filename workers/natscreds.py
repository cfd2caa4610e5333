"""The bus's identities: operator, accounts, signing keys, and one `.creds` file per role.

`jetscan up` calls `ensure(home)` before starting its nats-server; a cluster runs
`jetscan nats-credentials DIR` once (deploy/README.md). Layout under the folder:

- `keys/operator.nk`, `keys/system.nk`, `keys/account.nk`: seeds of the operator and the
  accounts, kept: JetStream stores its data under the account's public key.
- `keys/jobs.nk`: the account's signing key for scan jobs; the launcher alone holds it.
- `creds/<role>.creds`, `creds/admin.creds`: one user per role
  (`handlers.permissions.role`) and the admin (setup, the operator's CLI).
- `creds/job-signer.json`: what the launcher signs jobs' users with (account, jobs seed).
- `auth.conf`: the nats-server lines that trust the operator and preload both accounts;
  `nats-values-auth.yaml`: the same as values for the NATS Helm chart.

Every file is 0600 in 0700 folders. Role users are issued anew at every call, so a change
of permissions applies at the next start; the keys are made once.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from contracts.settings import ROLES
from handlers import natsauth, permissions, topology
from handlers.natsauth import KeyPair
from workers.embedded import ServerAuth, auth_config

ADMIN = permissions.ADMIN
JOB_SIGNER = "job-signer.json"


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _key(folder: Path, name: str, kind: str) -> KeyPair:
    path = folder / f"{name}.nk"
    if path.exists():
        return KeyPair(path.read_text().strip())
    key = KeyPair.create(kind)
    natsauth.write_secret(path, key.seed + "\n")
    return key


def ensure(folder: Path, topo: topology.Topology | None = None) -> ServerAuth:
    """Make the keys if missing, issue every role's credentials; return the server's auth."""
    topo = topo or topology.load()
    keys = _dir(folder / "keys")
    creds = _dir(folder / "creds")
    operator = _key(keys, "operator", "operator")
    system = _key(keys, "system", "account")
    account = _key(keys, "account", "account")
    jobs = _key(keys, "jobs", "account")
    auth = ServerAuth(
        operator_jwt=natsauth.operator_jwt(operator, "jetscan", system.public),
        system_account=system.public,
        accounts={
            system.public: natsauth.account_jwt(operator, system.public, "SYS", jetstream=False),
            account.public: natsauth.account_jwt(
                operator, account.public, "JETSCAN", jetstream=True, signing_keys=(jobs.public,)
            ),
        },
    )
    for role in (*ROLES, ADMIN):
        text = natsauth.new_user(
            account, f"jetscan-{role}", permissions.role(role, topo), account=account.public
        )
        natsauth.write_secret(creds / f"{role}.creds", text)
    # No shared job user: a leftover from before each Job got its own is removed.
    (creds / "scan-jobs.creds").unlink(missing_ok=True)
    signer = natsauth.Signer(account=account.public, seed=jobs.seed)
    natsauth.write_secret(creds / JOB_SIGNER, msgspec.json.encode(signer).decode())
    natsauth.write_secret(folder / "auth.conf", auth_config(auth))
    natsauth.write_secret(folder / "nats-values-auth.yaml", helm_values(auth))
    return auth


def helm_values(auth: ServerAuth) -> str:
    """`auth` as values for the official NATS Helm chart (`-f` after deploy/nats-values.yaml).

    The chart quotes strings; `<< ... >>` is its syntax for a bare word."""
    merge = {
        "operator": auth.operator_jwt,
        "system_account": auth.system_account,
        "resolver": "<< MEMORY >>",
        "resolver_preload": dict(sorted(auth.accounts.items())),
    }
    return yaml.safe_dump({"config": {"merge": merge}}, sort_keys=False, width=1 << 16)
