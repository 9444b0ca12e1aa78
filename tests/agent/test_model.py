"""The proxy-neutral model and the renderers' quoting, without running a proxy."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.model import HostMatch, RenderError, RenderOptions, Route, build_model
from agent.platform import Platform
from agent.render import haproxy_quote, nginx_quote, nginx_route_regex, plain_path, render
from lbcp.validation import parse_spec
from tests.agent.helpers import CERT_ARN, LB_ID, backend, spec_document

FULL_PLATFORM = Platform(
    stream_module=Path("/modules/ngx_stream_module.so"),
    modsecurity_module=Path("/modules/ngx_http_modsecurity_module.so"),
    crs_rules_dir=Path("/crs/rules"),
)
OPTIONS = RenderOptions(run_dir=Path("/run/lbcp"), log_dir=Path("/var/log/lbcp"), platform=FULL_PLATFORM)


def model_of(document: dict[str, Any], options: RenderOptions = OPTIONS) -> Any:
    return build_model(
        parse_spec(document), load_balancer_id=LB_ID, version=7, release_dir=Path("/rel/v7"), options=options
    )


def classic_mixed() -> dict[str, Any]:
    return spec_document(
        type="classic",
        listeners=[
            {"protocol": "HTTP", "port": 80, "defaultBackend": "app", "idleTimeoutSeconds": 30},
            {"protocol": "TCP", "port": 5432, "defaultBackend": "app", "idleTimeoutSeconds": 900},
            {"protocol": "TLS", "port": 6432, "defaultBackend": "db", "certificateArn": CERT_ARN},
        ],
        backends=[backend("app", 9000), backend("db", 9001), backend("unused", 9002)],
        drain={"timeoutSeconds": 240},
    )


def test_routes_keep_the_spec_order_and_wildcards_become_suffixes() -> None:
    model = model_of(
        spec_document(
            listeners=[
                {
                    "protocol": "HTTP",
                    "port": 80,
                    "defaultBackend": "app",
                    "rules": [
                        {"host": "*.Example.com", "pathPrefix": "/api/", "backend": "api"},
                        {"host": "www.example.com", "backend": "app"},
                        {"pathPrefix": "/static/", "backend": "api"},
                    ],
                }
            ],
            backends=[backend("app", 9000), backend("api", 9001)],
        )
    )
    (frontend,) = model.frontends
    assert [(r.host, r.path_prefix, r.backend) for r in frontend.routes] == [
        (HostMatch(".example.com", wildcard=True), "/api/", "b_api_http"),
        (HostMatch("www.example.com", wildcard=False), None, "b_app_http"),
        (None, "/static/", "b_api_http"),
    ]
    assert frontend.default_backend == "b_app_http"


def test_a_backend_used_at_l7_and_l4_appears_once_per_mode_and_unused_ones_not_at_all() -> None:
    model = model_of(classic_mixed())
    assert [(b.id, b.mode, b.idle_timeout) for b in model.backends] == [
        ("b_app_http", "http", 30),
        ("b_app_tcp", "tcp", 900),
        ("b_db_tcp", "tcp", 60),
    ]
    assert [(f.id, f.mode, f.tls is not None) for f in model.frontends] == [
        ("l_80", "http", False),
        ("l_5432", "tcp", False),
        ("l_6432", "tcp", True),
    ]
    assert model.certificates[0].bundle == Path("/rel/v7/certs/11111111-2222-3333-4444-555555555555.pem")


def test_an_unset_health_check_protocol_follows_the_listener_an_explicit_one_is_kept() -> None:
    document = classic_mixed()
    model = model_of(document)
    assert [(b.id, b.health.protocol) for b in model.backends] == [
        ("b_app_http", "HTTP"),
        ("b_app_tcp", "TCP"),  # the same backend behind the TCP listener is not sent an HTTP request
        ("b_db_tcp", "TCP"),
    ]
    document["backends"][0]["healthCheck"] = {"path": "/healthz"}  # a path alone means HTTP
    document["backends"][1]["healthCheck"] = {"protocol": "HTTPS"}
    model = model_of(document)
    assert [(b.id, b.health.protocol, b.health.path) for b in model.backends] == [
        ("b_app_http", "HTTP", "/healthz"),
        ("b_app_tcp", "HTTP", "/healthz"),
        ("b_db_tcp", "HTTPS", "/"),
    ]


def test_l4_listeners_may_keep_connections_until_the_drain_timeout_l7_only_ones_are_bounded_sooner() -> None:
    assert model_of(classic_mixed()).max_connection_lifetime == 240
    l7_only = spec_document(
        listeners=[{"protocol": "HTTP", "port": 80, "defaultBackend": "app"}],
        backends=[backend("app", 9000)],
        drain={"timeoutSeconds": 600},
    )
    assert model_of(l7_only).max_connection_lifetime == 120
    l7_only["drain"]["maxConnectionLifetimeSeconds"] = 900
    assert model_of(l7_only).max_connection_lifetime == 600  # capped by the drain timeout
    l7_only["drain"]["maxConnectionLifetimeSeconds"] = 45
    assert model_of(l7_only).max_connection_lifetime == 45


def test_the_drained_variant_keeps_nothing_public() -> None:
    model = model_of(classic_mixed(), replace(OPTIONS, drained=True))
    assert model.frontends == () and model.backends == () and model.waf is None
    assert model.max_connection_lifetime == 240  # the old workers' bound is the serving config's


def test_a_listener_on_the_stats_port_is_refused_with_the_way_out() -> None:
    document = spec_document(
        listeners=[{"protocol": "HTTP", "port": 8404, "defaultBackend": "app"}], backends=[backend("app", 9000)]
    )
    with pytest.raises(RenderError, match="agent's stats port"):
        model_of(document)


@pytest.mark.parametrize(
    ("platform", "missing"),
    [
        (replace(FULL_PLATFORM, modsecurity_module=None), "ModSecurity for NGINX"),
        (replace(FULL_PLATFORM, crs_rules_dir=None), "OWASP Core Rule Set"),
    ],
)
def test_a_waf_this_machine_lacks_is_refused_never_silently_dropped(platform: Platform, missing: str) -> None:
    document = spec_document(
        proxy="nginx",
        listeners=[{"protocol": "HTTP", "port": 80, "defaultBackend": "app"}],
        backends=[backend("app", 9000)],
        waf={"enabled": True, "mode": "block"},
    )
    with pytest.raises(RenderError, match=missing):
        model_of(document, replace(OPTIONS, platform=platform))


def test_haproxy_refuses_a_waf_model_even_if_the_spec_rules_were_bypassed() -> None:
    document = spec_document(
        proxy="nginx",
        listeners=[{"protocol": "HTTP", "port": 80, "defaultBackend": "app"}],
        backends=[backend("app", 9000)],
        waf={"enabled": True},
    )
    with pytest.raises(RenderError, match="runs on NGINX"):
        render(model_of(document), "haproxy")


def test_ipv6_targets_are_bracketed_for_both_proxies() -> None:
    document = spec_document(
        listeners=[{"protocol": "HTTP", "port": 80, "defaultBackend": "app"}],
        backends=[{"name": "app", "targets": [{"host": "fd00::1", "port": 9000}]}],
    )
    model = model_of(document)
    assert model.backends[0].servers[0].address == "[fd00::1]:9000"
    assert "'[fd00::1]:9000'" in render(model, "haproxy")["haproxy.cfg"]
    assert '"[fd00::1]:9000"' in render(model, "nginx")["nginx.conf"]


@pytest.mark.parametrize("value", ["a'b", "x\ny", "", "tab\there"])
def test_haproxy_quote_refuses_what_could_break_out(value: str) -> None:
    with pytest.raises(RenderError):
        haproxy_quote(value)


@pytest.mark.parametrize("value", ['a"b', "x\ny", "$host", "back\\slash", ""])
def test_nginx_quote_refuses_what_could_break_out_or_interpolate(value: str) -> None:
    with pytest.raises(RenderError):
        nginx_quote(value)


def test_plain_paths_for_modsecurity_refuse_spaces() -> None:
    assert plain_path("/var/log/lbcp-agent/modsec_audit.log") == "/var/log/lbcp-agent/modsec_audit.log"
    with pytest.raises(RenderError):
        plain_path("/tmp/with space")


@pytest.mark.parametrize(
    ("route", "matches", "misses"),
    [
        (
            Route(HostMatch(".example.com", wildcard=True), "/api/", "b"),
            ["a.example.com /api/x", "a.b.example.com /api/?q=1"],
            ["example.com /api/", "a.exampleXcom /api/", "a.example.com /apix", "a.example.com.evil /api/"],
        ),
        (
            Route(HostMatch("api.example.com", wildcard=False), None, "b"),
            ["api.example.com /", "api.example.com /anything"],
            ["xapi.example.com /", "api.example.com.evil /"],
        ),
        (Route(None, "/v1.0/", "b"), ["any.host /v1.0/x", " /v1.0/"], ["h /v1x0/", "h /v2/"]),
    ],
)
def test_nginx_route_regexes_match_exactly_what_the_route_does(
    route: Route, matches: list[str], misses: list[str]
) -> None:
    quoted = nginx_route_regex(route)
    assert quoted.startswith('"~^') and quoted.endswith('"')
    pattern = re.compile(quoted[2:-1])  # nginx keeps "\." as is inside quotes, as Python's re reads it
    for text in matches:
        assert pattern.match(text), text
    for text in misses:
        assert not pattern.match(text), text
