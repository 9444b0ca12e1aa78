"""The spec model and its cross-field rules, without AWS."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lbcp.errors import SpecRejected
from lbcp.models.spec import LoadBalancerSpec
from lbcp.validation import parse_spec

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7"


def valid() -> dict[str, Any]:
    return {
        "name": "web",
        "type": "application",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "listeners": [
            {"protocol": "HTTP", "port": 80, "defaultBackend": "app"},
            {
                "protocol": "HTTPS",
                "port": 443,
                "certificateArn": CERT,
                "defaultBackend": "app",
                "rules": [{"host": "API.example.com", "pathPrefix": "/v1/", "backend": "api"}],
            },
        ],
        "backends": [
            {"name": "app", "targets": [{"host": "10.0.1.10", "port": 8080}]},
            {
                "name": "api",
                "targets": [{"host": "Api.Internal", "port": 9000}, {"host": "fd00::1", "port": 9000}],
            },
        ],
        "capacity": {"min": 2, "max": 4},
    }


def errors_of(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecRejected) as caught:
        parse_spec(document)
    return {error.field: error.code for error in caught.value.errors}


def test_a_valid_spec_gets_production_defaults() -> None:
    spec = parse_spec(valid())
    assert spec.proxy == "haproxy"
    assert spec.entry.mode == "pool"
    assert spec.waf.enabled is False
    assert spec.lifecycle.pending_timeout_seconds == 600
    assert spec.lifecycle.unhealthy_timeout_seconds == 30
    assert spec.drain.connection_threshold == 1
    assert spec.drain.timeout_seconds == 300
    assert spec.scaling.policy == "default"
    assert spec.scaling.cooldown_seconds == 600
    assert spec.rollout.max_surge == 1
    assert spec.backends[0].health_check.interval_seconds == 10


def test_hosts_are_normalised_to_lowercase() -> None:
    spec = parse_spec(valid())
    assert spec.listeners[1].rules[0].host == "api.example.com"
    assert spec.backends[1].targets[0].host == "api.internal"


def test_a_stored_spec_reads_back_identically() -> None:
    spec = parse_spec(valid())
    again = LoadBalancerSpec.model_validate_json(spec.model_dump_json(by_alias=True))
    assert again == spec


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        (lambda d: d.update(extra=1), "extra", "extra_forbidden"),
        (lambda d: d["capacity"].update(min="2"), "capacity.min", "int_type"),
        (lambda d: d["capacity"].update(min=True), "capacity.min", "int_type"),
        (lambda d: d["capacity"].update(min=2.0), "capacity.min", "int_type"),
        (lambda d: d["listeners"][0].update(port=65536), "listeners[0].port", "less_than_equal"),
        (lambda d: d.update(name="Web"), "name", "string_pattern_mismatch"),
        (lambda d: d.update(name="lb-0123456789abcdef0"), "name", "value_error"),
        (
            lambda d: d["backends"][0]["targets"][0].update(host="10.0.0.1;drop"),
            "backends[0].targets[0].host",
            "value_error",
        ),
        (
            lambda d: d["listeners"][1]["rules"][0].update(pathPrefix="/a b"),
            "listeners[1].rules[0].pathPrefix",
            "string_pattern_mismatch",
        ),
        (
            lambda d: d["listeners"][1]["rules"][0].update(pathPrefix='/a";'),
            "listeners[1].rules[0].pathPrefix",
            "string_pattern_mismatch",
        ),
        (lambda d: d["listeners"][0].update(port=443), "listeners[1].port", "duplicate"),
        (lambda d: d["listeners"][0].update(protocol="TCP"), "listeners[0].protocol", "protocol_not_allowed"),
        (lambda d: d["listeners"][1].pop("certificateArn"), "listeners[1].certificateArn", "missing"),
        (
            lambda d: d["listeners"][0].update(certificateArn=CERT),
            "listeners[0].certificateArn",
            "not_allowed",
        ),
        (
            lambda d: d["listeners"][0].update(defaultBackend="nope"),
            "listeners[0].defaultBackend",
            "unknown_backend",
        ),
        (
            lambda d: d["listeners"][1]["rules"][0].update(backend="nope"),
            "listeners[1].rules[0].backend",
            "unknown_backend",
        ),
        (lambda d: d["listeners"][1]["rules"].append({"backend": "app"}), "listeners[1].rules[1]", "empty"),
        (lambda d: d["backends"][1].update(name="app"), "backends[1].name", "duplicate"),
        (lambda d: d["capacity"].update(min=5), "capacity.min", "out_of_range"),
        (lambda d: d.update(subnetIds=["subnet-0123456789abcdef0"]), "subnetIds", "too_few_zones"),
        (lambda d: d.update(subnetIds=["subnet-0123456789abcdef0"] * 2), "subnetIds[1]", "duplicate"),
        (lambda d: d.update(proxy="haproxy", waf={"enabled": True}), "waf.enabled", "not_allowed"),
        (lambda d: d.update(entry={"dnsTtlSeconds": 30}), "entry.dnsTtlSeconds", "not_allowed"),
        (
            lambda d: d.update(lifecycle={"unhealthyTimeoutSeconds": 9}),
            "lifecycle.unhealthyTimeoutSeconds",
            "out_of_range",
        ),
        (
            lambda d: d.update(rollout={"maxSurge": 0, "maxUnavailable": 0}),
            "rollout.maxSurge",
            "out_of_range",
        ),
        (
            lambda d: d.update(rollout={"maxSurge": "0%", "maxUnavailable": 0}),
            "rollout.maxSurge",
            "out_of_range",
        ),
        (
            lambda d: d.update(rollout={"alarmNames": ["api-5xx", "latency", "api-5xx"]}),
            "rollout.alarmNames[2]",
            "duplicate",
        ),
        (
            lambda d: d.update(instance={"imageId": "ami-0123456789abcdef0"}, rollout={"followLatestImage": True}),
            "rollout.followLatestImage",
            "not_allowed",
        ),
        (lambda d: d.update(tags={"lbcp:owner": "x"}), "tags.lbcp:owner", "reserved"),
        (
            lambda d: d.update(scaling={"metrics": {"cpu": {"scaleOutAbove": 50, "scaleInBelow": 60}}}),
            "scaling.metrics.cpu.scaleInBelow",
            "out_of_range",
        ),
        (
            lambda d: d.update(scaling={"metrics": {"cpu": None, "memory": None, "activeConnections": None}}),
            "scaling.metrics",
            "empty",
        ),
        (
            lambda d: d["backends"][0].update(healthCheck={"intervalSeconds": 5, "timeoutSeconds": 5}),
            "backends[0].healthCheck.timeoutSeconds",
            "out_of_range",
        ),
    ],
)
def test_each_violation_names_its_field(change: Any, field: str, code: str) -> None:
    document = copy.deepcopy(valid())
    change(document)
    assert errors_of(document).get(field) == code, errors_of(document)


@pytest.mark.parametrize(
    ("change", "derived"),
    [
        # A health check every 5 s (or 2 s) cannot wait 5 s for an answer: the timeout's
        # default shortens to fit inside the interval the user chose.
        (lambda d: d["backends"][0].update(healthCheck={"intervalSeconds": 5}), ("timeout", 4)),
        (lambda d: d["backends"][0].update(healthCheck={"intervalSeconds": 2}), ("timeout", 1)),
        (lambda d: d["backends"][0].update(healthCheck={"intervalSeconds": 30}), ("timeout", 5)),
        # A slow heartbeat needs a longer silence before an LBVM counts as unhealthy.
        (lambda d: d.update(lifecycle={"heartbeatIntervalSeconds": 20}), ("unhealthy", 40)),
        (lambda d: d.update(lifecycle={"heartbeatIntervalSeconds": 15}), ("unhealthy", 30)),
        # The WAF runs on NGINX: enabling it picks the proxy that can run it.
        (lambda d: d.update(waf={"enabled": True}), ("proxy", "nginx")),
        (lambda d: d.update(waf={"enabled": False}), ("proxy", "haproxy")),
    ],
)
def test_a_default_follows_what_the_user_set_on_the_other_side_of_a_rule(
    change: Any, derived: tuple[str, object]
) -> None:
    document = copy.deepcopy(valid())
    change(document)
    spec = parse_spec(document)
    values = {
        "timeout": spec.backends[0].health_check.timeout_seconds,
        "unhealthy": spec.lifecycle.unhealthy_timeout_seconds,
        "proxy": spec.proxy,
    }
    assert values[derived[0]] == derived[1]


def test_a_value_the_user_set_is_never_replaced_by_a_derived_default() -> None:
    document = valid()
    document["backends"][0]["healthCheck"] = {"intervalSeconds": 5, "timeoutSeconds": 2}
    document["lifecycle"] = {"heartbeatIntervalSeconds": 20, "unhealthyTimeoutSeconds": 100}
    spec = parse_spec(document)
    assert spec.backends[0].health_check.timeout_seconds == 2
    assert spec.lifecycle.unhealthy_timeout_seconds == 100
    # And a value set against the rule is still refused, naming the field the user sent.
    document["backends"][0]["healthCheck"] = {"intervalSeconds": 5, "timeoutSeconds": 5}
    assert errors_of(document) == {"backends[0].healthCheck.timeoutSeconds": "out_of_range"}


def test_a_derived_default_never_hides_the_error_of_a_bad_value_it_depends_on() -> None:
    document = valid()
    document["backends"][0]["healthCheck"] = {"intervalSeconds": "5"}
    document["lifecycle"] = {"heartbeatIntervalSeconds": 0}
    assert errors_of(document) == {
        "backends[0].healthCheck.intervalSeconds": "int_type",
        "lifecycle.heartbeatIntervalSeconds": "greater_than_equal",
    }


def test_all_violations_are_reported_at_once() -> None:
    document = valid()
    document["capacity"] = {"min": 9, "max": 3}
    document["listeners"][0]["defaultBackend"] = "nope"
    document["tags"] = {"aws:x": "y"}
    assert set(errors_of(document)) == {"capacity.min", "listeners[0].defaultBackend", "tags.aws:x"}


def test_waf_on_nginx_application_is_accepted_and_rules_on_classic_are_not() -> None:
    document = valid()
    document.update(proxy="nginx", waf={"enabled": True, "mode": "block"})
    assert parse_spec(document).waf.mode == "block"
    document = valid()
    document["type"] = "classic"
    assert errors_of(document) == {"listeners[1].rules": "not_allowed"}


def test_the_representation_is_a_valid_load_balancer_document() -> None:
    from datetime import UTC, datetime

    from lbcp.models.resource import LoadBalancer, LoadBalancerRecord, representation
    from lbcp.service import initial_status

    spec = parse_spec(valid())
    now = datetime(2026, 11, 28, tzinfo=UTC)
    record = LoadBalancerRecord(
        id="lb-0123456789abcdef0",
        generation=3,
        spec=spec,
        status=initial_status(spec),
        created_at=now,
        updated_at=now,
        created_by="arn:aws:iam::123456789012:user/a",
        desired_capacity=2,
    )
    # The documented model accepts it and serialises it back identically, key order included,
    # in AWS and in the local runtime (whose entry says where it listens).
    local = [{"listenerPort": 80, "address": "127.0.0.1:41080"}]
    for document in (representation(record, now), representation(record, now, local)):
        parsed = LoadBalancer.model_validate_json(json.dumps(document))
        assert list(parsed.model_dump(mode="json", by_alias=True).items()) == list(document.items())
    assert document["status"]["entry"]["localEndpoints"] == local
    assert document["deletionRequestedAt"] is None
    assert document["status"]["phase"] == "Pending"


@pytest.mark.parametrize("value", ["25%", "0%", "100%", 0, 3])
def test_max_surge_takes_a_count_or_a_percentage(value: object) -> None:
    spec = parse_spec({**valid(), "rollout": {"maxSurge": value, "maxUnavailable": 1}})
    assert spec.rollout.max_surge == value


@pytest.mark.parametrize("value", ["101%", "25", "-1%", "2.5%", 1.5, "25 %"])
def test_a_percentage_is_a_whole_number_up_to_100_with_a_percent_sign(value: object) -> None:
    assert "rollout.maxSurge" in errors_of({**valid(), "rollout": {"maxSurge": value}})


def test_percentages_resolve_as_in_a_deployment_surge_up_unavailable_down() -> None:
    from lbcp.logic.rollout_bounds import surge_count, unavailable_count

    rollout = parse_spec({**valid(), "rollout": {"maxSurge": "25%", "maxUnavailable": "25%"}}).rollout
    assert (surge_count(rollout, 10), unavailable_count(rollout, 10)) == (3, 2)
    # Both would be 0 for a small fleet only if surge rounded down too; it does not.
    assert (surge_count(rollout, 2), unavailable_count(rollout, 2)) == (1, 0)
    none = parse_spec({**valid(), "rollout": {"maxSurge": "0%", "maxUnavailable": "25%"}}).rollout
    assert (surge_count(none, 2), unavailable_count(none, 2)) == (0, 1)  # never a rollout that cannot move
