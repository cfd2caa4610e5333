"""The sslyze options a scan request may set: a closed list, so no free-form argument can exist.

Choices:
- `scan_commands` names sslyze's own scan commands (the keys of its JSON output). The default
  runs every one the findings read; a subset is for speed or for a server that breaks under a
  check (ROBOT alone opens dozens of connections). Session resumption, elliptic curves, EMS
  and HTTP headers are left out: no finding reads them.
- `server_name` is the SNI to send (`--sni`), for a certificate served under a name other than
  the target; it must be a hostname, and the certificate's name check follows it.
- `starttls` upgrades a plain protocol first (`--starttls`); "auto" (guess from the port) is
  not offered, so what runs is what was asked for.
- There is no timeout option: sslyze's CLI has none (5 s per connection, 3 retries are
  built in). The scan's deadline bounds the whole run.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from scanners.errors import ConfigError, TargetError
from scanners.targets import normalize_hostname

ScanCommand = Literal[
    "certificate_info",
    "ssl_2_0_cipher_suites",
    "ssl_3_0_cipher_suites",
    "tls_1_0_cipher_suites",
    "tls_1_1_cipher_suites",
    "tls_1_2_cipher_suites",
    "tls_1_3_cipher_suites",
    "heartbleed",
    "robot",
    "openssl_ccs_injection",
    "tls_compression",
    "session_renegotiation",
    "tls_fallback_scsv",
    "tls_1_3_early_data",
]
StartTls = Literal["smtp", "xmpp", "xmpp_server", "pop3", "imap", "ftp", "ldap", "rdp", "postgres"]
ALL_SCAN_COMMANDS: tuple[ScanCommand, ...] = get_args(ScanCommand)


class SslyzeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options for one sslyze scan. Construct it through `scanners.decode_config`."""

    scan_commands: tuple[ScanCommand, ...] = ALL_SCAN_COMMANDS
    server_name: str | None = None
    starttls: StartTls | None = None
    slow_connection: bool = False

    def __post_init__(self) -> None:
        if not self.scan_commands:
            raise ConfigError("scan_commands", "is empty; leave it out to run every check")
        if len(set(self.scan_commands)) != len(self.scan_commands):
            raise ConfigError("scan_commands", "lists a scan command more than once")
        if self.server_name is not None:
            try:
                normalized = normalize_hostname(self.server_name)
            except TargetError as exc:
                raise ConfigError("server_name", exc.reason) from exc
            if normalized != self.server_name:
                raise ConfigError("server_name", f"write it normalised: {normalized!r}")
