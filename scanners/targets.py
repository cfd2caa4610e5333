"""Scan targets: the one place user-typed target text is checked before it can reach an argv.

Commands are argv lists, never shell strings, so the shell-metacharacter and leading-dash rules
are defence in depth: a target is data, and a value that could read as an option or as shell
syntax is refused rather than escaped. Targets are allow-listed, not sanitised: text is either
a valid hostname, IP address, bounded CIDR, http(s) URL or `HOST:PORT` endpoint, or it is
rejected with a reason a person can act on.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
from collections.abc import Collection
from typing import TypeAlias

import msgspec

from scanners.errors import TargetError

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetKind(enum.StrEnum):
    HOST = "host"
    IP = "ip"
    CIDR = "cidr"
    URL = "url"
    # One service: `HOST:PORT`, `IP:PORT` or `[IPv6]:PORT`, for tools that connect to one port.
    ENDPOINT = "endpoint"


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A validated target.

    `value` is the normalised text handed to the tool. `host` is what gets connected to: the
    hostname, the IP address (IPv6 without brackets) or, for a CIDR, the network itself.
    `port` is set for URLs that name one and for endpoints.
    `domain` groups targets for reports: a registrable-ish domain for names, the network
    string for addresses.
    """

    kind: TargetKind
    value: str
    host: str
    domain: str
    port: int | None = None


_FIELD = "target"
_MAX_LENGTH = 2048
_MAX_HOSTNAME = 253
# Besides the usual shell syntax: `#` starts a comment and `?`/`*`/`[` glob. Brackets are
# allowed only around an IPv6 host in a URL or before an endpoint's port, handled before this
# check.
_SHELL_METACHARACTERS = frozenset(";|&$`<>(){}[]!*?'\"\\#^")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# What inet_aton accepts as a number ("127.1", "0x7f000001"): getaddrinfo would treat such a
# "hostname" as an address and slip past name-based scope checks.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
# An IPv6 host in brackets: a URL's (`http://[::1]/`) or an endpoint's (`[::1]:443`).
_URL_BRACKETED = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\[([^\]/]*)\]")
_ENDPOINT_BRACKETED = re.compile(r"\[([^\]/]*)\]:")
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/]*)(?P<path>/.*)?", re.S)
_URL_PATH = re.compile(r"(?:[A-Za-z0-9._~+,=:@/-]|%[0-9A-Fa-f]{2})*")
_DEFAULT_PATH = "/"
# Second-level labels under which registrations happen one level deeper (example.co.uk).
# Deliberately a short list of the common ones, not the Public Suffix List: `domain` only
# groups findings in reports and never decides scope.
_SECOND_LEVEL_SUFFIXES = frozenset(
    {
        *(f"{sld}.uk" for sld in ("co", "org", "me", "ac", "gov", "ltd", "plc", "net", "nhs")),
        *(f"{sld}.au" for sld in ("com", "net", "org", "edu", "gov", "id")),
        *(f"{sld}.nz" for sld in ("co", "org", "net", "govt", "ac")),
        *(f"{sld}.jp" for sld in ("co", "ne", "or", "ac", "go")),
        *(f"{sld}.za" for sld in ("co", "org", "gov", "ac")),
        *(f"{sld}.kr" for sld in ("co", "or", "go", "ac")),
        *(f"{sld}.in" for sld in ("co", "net", "org", "gov", "ac")),
        *(f"{sld}.br" for sld in ("com", "net", "org", "gov")),
        *(f"{sld}.cn" for sld in ("com", "net", "org", "gov")),
        *(f"com.{tld}" for tld in ("mx", "ar", "tr", "sg", "hk", "tw", "my", "ph", "vn", "ua")),
        *(f"co.{tld}" for tld in ("il", "id", "th")),
    }
)


def parse_target(
    text: str,
    *,
    allowed_kinds: Collection[TargetKind],
    ipv4_min_prefix: int = 24,
    ipv6_min_prefix: int = 120,
) -> Target:
    """Validate and normalise `text`, or raise `TargetError("target", reason)`.

    CIDR size limits are minimum prefix lengths (the default refuses anything larger than a
    /24 or an IPv6 /120). A CIDR with host bits set (`10.0.0.7/24`) is normalised to its
    network. A port outside a URL makes an endpoint (`HOST:PORT`, `[IPv6]:PORT`), a kind of
    its own for tools that connect to one service; a tool that scans ports takes them in its
    config instead, and is told so.
    """
    bracketed = _check_characters(text)
    if "://" in text:
        target = _url_target(text, bracketed)
    elif "/" in text:
        target = _cidr_target(text, ipv4_min_prefix, ipv6_min_prefix)
    elif (address := _ip_address(text)) is not None:
        value = str(address)
        target = Target(kind=TargetKind.IP, value=value, host=value, domain=_net(address))
    elif ":" in text:
        if TargetKind.ENDPOINT not in allowed_kinds:
            raise TargetError(
                _FIELD, "a port belongs in the tool config or a URL, not a host target"
            )
        target = _endpoint_target(text, bracketed)
    else:
        name = normalize_hostname(text)
        target = Target(kind=TargetKind.HOST, value=name, host=name, domain=_domain_of(name))
    if target.kind not in allowed_kinds:
        accepted = ", ".join(sorted(str(kind) for kind in allowed_kinds)) or "none"
        raise TargetError(_FIELD, f"{target.kind} targets are not accepted here ({accepted} are)")
    return target


def normalize_hostname(text: str) -> str:
    """A DNS hostname in lowercase ASCII (IDNA), or `TargetError`. One trailing dot is dropped."""
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise TargetError(_FIELD, "is empty")
    if len(name) > _MAX_HOSTNAME:
        raise TargetError(_FIELD, f"hostname is longer than {_MAX_HOSTNAME} characters")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        reason = f"{name!r} is not a valid hostname ({_idna_reason(exc)})"
        raise TargetError(_FIELD, reason) from exc
    if len(ascii_name) > _MAX_HOSTNAME:
        raise TargetError(_FIELD, f"hostname is longer than {_MAX_HOSTNAME} characters")
    labels = ascii_name.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise TargetError(
                _FIELD,
                f"{label!r} is not a valid hostname label: 1-63 letters, digits or hyphens,"
                " not starting or ending with a hyphen",
            )
        if label.startswith("xn--"):
            _check_punycode(label)
    if _NUMERIC_LABEL.fullmatch(labels[-1]) or all(_NUMERIC_LABEL.fullmatch(p) for p in labels):
        raise TargetError(_FIELD, f"{text!r} looks like an IP address but is not a valid one")
    return ascii_name


def _check_characters(text: str) -> str:
    """Refuse text no target may contain; return the bracketed IPv6 URL host, if any."""
    if not text:
        raise TargetError(_FIELD, "is empty")
    if len(text) > _MAX_LENGTH:
        raise TargetError(_FIELD, f"is longer than {_MAX_LENGTH} characters")
    for char in text:
        # Category C covers control, format (zero-width, bidi overrides), surrogate and private
        # use characters: invisible in a UI, and IDNA would silently drop some of them.
        if unicodedata.category(char).startswith("C"):
            reason = f"contains a control or invisible character (U+{ord(char):04X})"
            raise TargetError(_FIELD, reason)
        if char.isspace():
            raise TargetError(_FIELD, "contains whitespace")
    if text.startswith("-"):
        raise TargetError(_FIELD, "starts with '-', which a tool would read as an option")
    bracketed = ""
    checked = text
    match = _URL_BRACKETED.match(text) or _ENDPOINT_BRACKETED.match(text)
    if match is not None:
        bracketed = match.group(1)
        checked = text[: match.start(1) - 1] + text[match.end(1) + 1 :]
    for char in checked:
        if char in _SHELL_METACHARACTERS:
            raise TargetError(_FIELD, f"contains the shell metacharacter {char!r}")
    return bracketed


def _url_target(text: str, bracketed: str) -> Target:
    match = _URL.fullmatch(text)
    if match is None:
        raise TargetError(_FIELD, f"{text!r} is not a valid URL")
    scheme = match.group("scheme").lower()
    if scheme not in ("http", "https"):
        raise TargetError(_FIELD, f"only http:// and https:// URLs are supported, not {scheme}://")
    authority = match.group("authority")
    if "@" in authority:
        raise TargetError(_FIELD, "URLs must not carry credentials (user:password@)")
    if bracketed:
        if ":" not in bracketed or _ip_address(bracketed) is None:
            raise TargetError(_FIELD, f"[{bracketed}] is not a valid IPv6 address")
        rest = authority[len(bracketed) + 2 :]
        if rest and not rest.startswith(":"):
            raise TargetError(_FIELD, f"{text!r} is not a valid URL")
        host_text, port_text = bracketed, rest[1:] if rest else None
    else:
        if authority.count(":") > 1:
            raise TargetError(_FIELD, "IPv6 addresses in URLs must be in brackets: http://[::1]/")
        host_text, colon, port = authority.partition(":")
        port_text = port if colon else None
    if not host_text:
        raise TargetError(_FIELD, "URL has no host")
    port_number = None if port_text is None else _port(port_text)
    path = match.group("path") or _DEFAULT_PATH
    if not _URL_PATH.fullmatch(path):
        raise TargetError(
            _FIELD, "URL path may hold only ASCII letters, digits, - . _ ~ + , = : @ / and %XX"
        )
    host, shown, domain = _host_parts(host_text)
    port_suffix = "" if port_number is None else f":{port_number}"
    return Target(
        kind=TargetKind.URL,
        value=f"{scheme}://{shown}{port_suffix}{path}",
        host=host,
        domain=domain,
        port=port_number,
    )


def _host_parts(host_text: str) -> tuple[str, str, str]:
    """A URL's or endpoint's host: (host, as written before a port, its scope domain)."""
    address = _ip_address(host_text)
    if address is None:
        host = normalize_hostname(host_text)
        return host, host, _domain_of(host)
    host = str(address)
    return host, f"[{host}]" if address.version == 6 else host, _net(address)


def _endpoint_target(text: str, bracketed: str) -> Target:
    if bracketed:
        if ":" not in bracketed or _ip_address(bracketed) is None:
            raise TargetError(_FIELD, f"[{bracketed}] is not a valid IPv6 address")
        host_text, port_text = bracketed, text[len(bracketed) + 3 :]
    else:
        if text.count(":") > 1:
            raise TargetError(_FIELD, "an IPv6 address with a port must be in brackets: [::1]:443")
        host_text, _, port_text = text.partition(":")
    if not host_text:
        raise TargetError(_FIELD, f"{text!r} has no host before the port")
    port = _port(port_text)
    host, shown, domain = _host_parts(host_text)
    return Target(
        kind=TargetKind.ENDPOINT, value=f"{shown}:{port}", host=host, domain=domain, port=port
    )


def _cidr_target(text: str, ipv4_min_prefix: int, ipv6_min_prefix: int) -> Target:
    address_text, _, prefix = text.partition("/")
    address = _ip_address(address_text)
    if address is None:
        raise TargetError(
            _FIELD, f"{text!r} is not a CIDR network (a URL needs http:// or https://)"
        )
    # ipaddress also takes netmasks ("/255.255.255.0"); one notation keeps values comparable.
    if not re.fullmatch(r"[0-9]{1,3}", prefix):
        raise TargetError(_FIELD, f"{text!r}: a CIDR prefix is a number, as in 10.0.0.0/24")
    try:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    except ValueError as exc:
        raise TargetError(_FIELD, f"{text!r} is not a valid CIDR network ({exc})") from exc
    min_prefix = ipv4_min_prefix if network.version == 4 else ipv6_min_prefix
    if network.prefixlen < min_prefix:
        size = 2 ** (network.max_prefixlen - min_prefix)
        raise TargetError(
            _FIELD, f"{network} is too large: at most a /{min_prefix} ({size} addresses) per scan"
        )
    return Target(kind=TargetKind.CIDR, value=str(network), host=str(network), domain=str(network))


def _ip_address(text: str) -> IPAddress | None:
    """The address `text` spells, None if it is not an address; IPv4-mapped IPv6 unwrapped."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise TargetError(_FIELD, f"IPv6 zone indexes (%{address.scope_id}) are not supported")
        # ::ffff:10.0.0.1 reaches the IPv4 host; treating it as IPv4 keeps scope checks honest.
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text):
        raise TargetError(_FIELD, f"port {text!r} is not a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise TargetError(_FIELD, f"port {port} is out of range 1-65535")
    return port


def _check_punycode(label: str) -> None:
    try:
        label.encode("ascii").decode("idna")
    except UnicodeError as exc:
        raise TargetError(_FIELD, f"{label!r} is not valid punycode") from exc


def _idna_reason(exc: UnicodeError) -> str:
    reason = str(exc)
    if "label empty or too long" in reason:
        return "empty label, or a label longer than 63 characters"
    # The codec wraps the real cause: "encoding with 'idna' codec failed (UnicodeError: ...)".
    inner = re.search(r"UnicodeError: (.*)\)$", reason)
    return inner.group(1) if inner else reason


def _net(address: IPAddress) -> str:
    return str(ipaddress.ip_network(address))


def domain_key(text: str) -> str:
    """The `domain` that targets `text` names are stored under, for a filter: an address or a
    network as its network (`127.0.0.1` -> `127.0.0.1/32`, `::1` -> `::1/128`), a name in
    lowercase without a trailing dot, "" as "" (no filter)."""
    text = text.strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text.lower().rstrip(".")


def _domain_of(hostname: str) -> str:
    labels = hostname.split(".")
    keep = 3 if ".".join(labels[-2:]) in _SECOND_LEVEL_SUFFIXES else 2
    return ".".join(labels[-keep:])
