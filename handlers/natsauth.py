"""NATS decentralized auth: nkeys, signed JWTs (operator, account, user) and `.creds` files.

The untyped `nkeys` library is fenced in this module. A JWT here is what nats-server 2.10+
verifies: `base64url(header).base64url(claims).base64url(ed25519 signature)`, the header
naming `ed25519-nkey`, the claims carrying a `nats` object whose `type` is operator,
account or user (version 2).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

import msgspec
import nkeys  # type: ignore[import-untyped]

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_UNLIMITED = -1


class NatsAuthError(Exception):
    """A key, JWT or `.creds` file is malformed."""


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """Publish and subscribe allow/deny lists (NATS wildcards); `responses` lets a user answer
    a request it received on whatever reply subject the request names, once."""

    pub_allow: tuple[str, ...] = ()
    pub_deny: tuple[str, ...] = ()
    sub_allow: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()
    responses: bool = False


class KeyPair:
    """An nkey: a seed (secret) and its public key, both as text."""

    def __init__(self, seed: str) -> None:
        try:
            self._kp = nkeys.from_seed(seed.encode())
            self.public = self._kp.public_key.decode()
        except (nkeys.NkeysError, ValueError) as exc:
            raise NatsAuthError(f"not an nkey seed: {exc!r}") from exc
        self.seed = seed

    @classmethod
    def create(cls, kind: str) -> KeyPair:
        prefix = {
            "operator": nkeys.PREFIX_BYTE_OPERATOR,
            "account": nkeys.PREFIX_BYTE_ACCOUNT,
            "user": nkeys.PREFIX_BYTE_USER,
        }[kind]
        return cls(nkeys.encode_seed(os.urandom(32), prefix).decode())

    def sign(self, data: bytes) -> bytes:
        return bytes(self._kp.sign(data))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(
    signer: KeyPair,
    subject: str,
    name: str,
    nats: dict[str, Any],
    *,
    expires: float | None = None,
    now: float | None = None,
) -> str:
    """A JWT for `subject` (a public key), signed by `signer`; `expires` in epoch seconds."""
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(now if now is not None else time.time()),
        "iss": signer.public,
        "name": name,
        "sub": subject,
        "nats": nats,
    }
    if expires is not None:
        claims["exp"] = int(expires)
    claims["jti"] = base64.b32encode(hashlib.sha256(msgspec.json.encode(claims)).digest())
    claims["jti"] = claims["jti"].decode().rstrip("=")
    head = _b64(msgspec.json.encode(_HEADER)) + "." + _b64(msgspec.json.encode(claims))
    return head + "." + _b64(signer.sign(head.encode()))


def decode_claims(jwt: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (for tests and for reading our own files)."""
    try:
        body = jwt.split(".")[1]
        claims: dict[str, Any] = msgspec.json.decode(base64.urlsafe_b64decode(body + "=="))
    except (IndexError, ValueError, msgspec.DecodeError) as exc:
        raise NatsAuthError("not a JWT") from exc
    return claims


def operator_jwt(operator: KeyPair, name: str, system_account: str) -> str:
    nats = {"type": "operator", "version": 2, "system_account": system_account}
    return encode_jwt(operator, operator.public, name, nats)


def account_jwt(
    operator: KeyPair,
    account: str,
    name: str,
    *,
    jetstream: bool,
    signing_keys: tuple[str, ...] = (),
) -> str:
    limits: dict[str, Any] = {
        "subs": _UNLIMITED,
        "data": _UNLIMITED,
        "payload": _UNLIMITED,
        "imports": _UNLIMITED,
        "exports": _UNLIMITED,
        "wildcards": True,
        "conn": _UNLIMITED,
        "leaf": _UNLIMITED,
    }
    if jetstream:
        limits |= {
            "mem_storage": _UNLIMITED,
            "disk_storage": _UNLIMITED,
            "streams": _UNLIMITED,
            "consumer": _UNLIMITED,
        }
    nats = {
        "type": "account",
        "version": 2,
        "limits": limits,
        "signing_keys": list(signing_keys),
        # A user JWT without permissions of its own may do nothing at all.
        "default_permissions": {"pub": {"deny": [">"]}, "sub": {"deny": [">"]}},
    }
    return encode_jwt(operator, account, name, nats)


def user_jwt(
    signer: KeyPair,
    user: str,
    name: str,
    permissions: Permissions,
    *,
    account: str,
    expires: float | None = None,
) -> str:
    """A user of `account`, signed by the account's key or one of its signing keys."""
    nats: dict[str, Any] = {
        "type": "user",
        "version": 2,
        "pub": _side(permissions.pub_allow, permissions.pub_deny),
        "sub": _side(permissions.sub_allow, permissions.sub_deny),
        "subs": _UNLIMITED,
        "data": _UNLIMITED,
        "payload": _UNLIMITED,
    }
    if permissions.responses:
        nats["resp"] = {"max": 1, "ttl": 0}
    if signer.public != account:
        nats["issuer_account"] = account
    return encode_jwt(signer, user, name, nats, expires=expires)


def _side(allow: tuple[str, ...], deny: tuple[str, ...]) -> dict[str, list[str]]:
    side: dict[str, list[str]] = {}
    if allow:
        side["allow"] = list(allow)
    else:
        # An empty allow list means "everything" to nats-server: say "nothing" explicitly.
        side["deny"] = [">"]
    if deny:
        side["deny"] = side.get("deny", []) + list(deny)
    return side


def creds(jwt: str, seed: str) -> str:
    """The `.creds` file nats-py's `user_credentials=` and the NATS CLI read."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def creds_jwt(text: str) -> str:
    """The JWT inside a `.creds` file."""
    lines = text.splitlines()
    try:
        return lines[lines.index("-----BEGIN NATS USER JWT-----") + 1].strip()
    except (ValueError, IndexError) as exc:
        raise NatsAuthError("not a NATS .creds file") from exc


def new_user(
    signer: KeyPair,
    name: str,
    permissions: Permissions,
    *,
    account: str,
    expires: float | None = None,
) -> str:
    """A fresh user key and its `.creds` text."""
    user = KeyPair.create("user")
    jwt = user_jwt(signer, user.public, name, permissions, account=account, expires=expires)
    return creds(jwt, user.seed)


class Signer(msgspec.Struct, frozen=True):
    """An account and the seed of one of its signing keys (`job-signer.json`)."""

    account: str
    seed: str

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Signer:
        try:
            with open(path, "rb") as f:
                signer = msgspec.json.decode(f.read(), type=cls)
        except (OSError, msgspec.DecodeError) as exc:
            raise NatsAuthError(f"{os.fspath(path)}: not a job signer: {exc}") from exc
        KeyPair(signer.seed)  # fails now rather than at the first scan
        return signer

    def issue(self, name: str, permissions: Permissions, *, expires: float) -> str:
        """A new user's `.creds`, signed with this key, valid until `expires` (epoch s)."""
        return new_user(
            KeyPair(self.seed), name, permissions, account=self.account, expires=expires
        )


def write_secret(path: os.PathLike[str] | str, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing it atomically."""
    tmp = f"{os.fspath(path)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
