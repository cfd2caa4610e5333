"""The portal's pure pieces: hostile text made visible, links only for http(s), a tool's
options from its config schema and back from a form, the scan list's filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.datastructures import FormData

from edge.portal import options
from edge.portal.overview import chart
from edge.portal.scanlist import BadFilter, list_request, parse_time
from edge.portal.security import same_origin
from edge.portal.templates import ENV, href, visible


def test_control_characters_are_shown_not_obeyed() -> None:
    assert visible("\x1b[31mred\x1b[0m") == "␛[31mred␛[0m"
    assert visible("a\tb\nc") == "a\tb\nc"
    assert (
        visible("bell\x07 nul\x00 del\x7f c1\x9b") == "bell␇ nul␀ del␡ c1\N{REPLACEMENT CHARACTER}"
    )
    assert visible("\r") == "␍"


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://example.com/a?b=c", True),
        ("http://127.0.0.1:8080/", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        (" javascript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox", False),
        ("//evil.example/", False),
        ("http://", False),
        ("https://exa mple.com/", False),
        ("https://example.com/\x00", False),
        ("ftp://example.com/", False),
    ],
)
def test_only_http_urls_become_links(url: str, link: bool) -> None:
    assert (href(url) is not None) is link


def test_templates_escape_everything_and_never_run_template_syntax() -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>{{ 7*7 }}{% raw %}'
    out = ENV.from_string("<p title='{{ v }}'>{{ v | visible }}</p>").render(v=hostile)
    assert "<img" not in out and "<script>" not in out and "49" not in out
    assert "&lt;script&gt;" in out and "&#34;&gt;&lt;img" in out and "{{ 7*7 }}" in out


def test_options_come_from_the_config_schema() -> None:
    nmap = {o.name: o for o in options.options("nmap")}
    assert nmap["timing"].kind == "int" and (nmap["timing"].minimum, nmap["timing"].maximum) == (
        0,
        5,
    )
    assert nmap["scan_type"].choices == ("connect", "syn")
    assert nmap["scripts"].kind == "multi" and "banner" in nmap["scripts"].choices
    assert nmap["reverse_dns"].kind == "bool" and nmap["reverse_dns"].default is True
    assert nmap["ports"].optional
    assert options.options("no-such-tool") == ()


def test_a_form_becomes_the_config_of_what_differs_from_the_defaults() -> None:
    form = FormData(
        [
            ("nmap:ports", " 22,80 "),
            ("nmap:timing", "3"),  # the default: left out
            ("nmap:scan_type", "connect"),
            ("nmap:scripts", "banner"),
            ("nmap:scripts", "http-title"),
            ("nmap:host_timeout_seconds", ""),
            # reverse_dns unchecked: absent
        ]
    )
    assert options.config_from_form("nmap", form, form.getlist) == {
        "ports": "22,80",
        "scripts": ["banner", "http-title"],
        "reverse_dns": False,
    }
    bad = FormData([("nmap:timing", "fast"), ("nmap:reverse_dns", "on")])
    with pytest.raises(options.BadOption) as refused:
        options.config_from_form("nmap", bad, bad.getlist)
    assert refused.value.field == "config.timing"
    lines = FormData([("dns:resolvers", "127.0.0.1:53\n\n127.0.0.2\n")])
    assert options.config_from_form("dns", lines, lines.getlist)["resolvers"] == [
        "127.0.0.1:53",
        "127.0.0.2",
    ]


def _params(**given: str) -> dict[str, str]:
    return {
        name: given.get(name, "")
        for name in ("domain", "target", "tool", "status", "schedule", "since", "until")
    }


def test_scan_list_filters_are_checked_like_the_api() -> None:
    q = list_request(_params(tool="nmap", status="running", since="2026-01-02"), "")
    assert (q.tool, q.status, q.since) == ("nmap", "running", datetime(2026, 1, 2, tzinfo=UTC))
    assert q.page_size == 100
    assert parse_time("until", "2026-01-02T03:04") == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    for given, field in (
        ({"status": "RUNNING"}, "status"),
        ({"tool": "nessus"}, "tool"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
        ({"schedule": "a b"}, "schedule"),
    ):
        with pytest.raises(BadFilter) as refused:
            list_request(_params(**given), "")
        assert refused.value.field == field, given


def test_same_origin_needs_a_header_and_every_header_to_agree() -> None:
    own = "http://127.0.0.1:8080"
    assert same_origin({"origin": own}, own) is None
    assert same_origin({"sec-fetch-site": "same-origin"}, own) is None
    assert same_origin({"origin": own, "sec-fetch-site": "same-origin"}, own) is None
    assert same_origin({}, own) is not None
    assert same_origin({"origin": "http://127.0.0.1:8081"}, own) is not None
    assert same_origin({"origin": own, "sec-fetch-site": "same-site"}, own) is not None


def test_the_chart_scales_to_the_largest_count() -> None:
    bars = chart({"high": 5, "info": 10}, width=300)
    assert [b.severity for b in bars] == ["critical", "high", "medium", "low", "info"]
    assert {b.severity: b.width for b in bars} == {
        "critical": 0,
        "high": 150,
        "medium": 0,
        "low": 0,
        "info": 300,
    }
    assert all(b.width == 0 for b in chart({}))
