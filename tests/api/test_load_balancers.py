"""The HTTP API's behaviour on good requests: create, read, list, change, delete, events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lbcp.api.dependencies import Dependencies, dependencies
from lbcp.models.scaling import ScalingState
from tests.conftest import Api, Cloud

MERGE_PATCH = "application/merge-patch+json"


def create(api: Api, spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    body = dict(spec, name=name) if name else spec
    response = api.create(body)
    assert response.status == 201, response.body
    result: dict[str, Any] = response.json()
    return result


def patch(api: Api, ref: str, body: dict[str, Any], generation: int | str) -> Any:
    return api.request(
        "PATCH",
        f"/v1/load-balancers/{ref}",
        body,
        headers={"Content-Type": MERGE_PATCH, "If-Match": f'"{generation}"'},
    )


def events(api: Api, ref: str, query: str = "") -> list[dict[str, Any]]:
    response = api.request("GET", f"/v1/load-balancers/{ref}/events", query=query)
    assert response.status == 200, response.body
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- create ------------------------------------------------------------------------


def test_create_returns_the_resource_with_location_etag_and_initial_status(api: Api, spec: dict[str, Any]) -> None:
    response = api.create(spec)
    assert response.status == 201
    body = response.json()
    assert body["id"].startswith("lb-") and len(body["id"]) == 20
    assert response.header("Location") == f"/v1/load-balancers/{body['id']}"
    assert response.header("ETag") == '"1"'
    assert response.header("Content-Type") == "application/json"
    assert body["generation"] == 1
    assert body["name"] == "web"
    assert body["createdBy"] == "arn:aws:iam::123456789012:user/local-developer"
    assert body["status"] == {
        "phase": "Pending",
        "observedGeneration": 0,
        "desiredCapacity": 2,
        "entry": {"mode": "pool", "dnsName": None},
        "lbvms": [],
        "message": None,
        "conditions": [],  # until the reconciler first acts
        "scaling": {
            "policy": "default",
            "warm": None,
            "lastDecision": None,
            "lastScaleOutAt": None,
            "lastScaleInAt": None,
        },
    }
    # Production defaults are filled in and returned, so the stored spec is explicit.
    assert body["drain"] == {
        "connectionThreshold": 1,
        "timeoutSeconds": 300,
        "deregistrationGraceSeconds": 30,
        "maxConnectionLifetimeSeconds": 120,
    }
    assert body["lifecycle"]["unhealthyTimeoutSeconds"] == 30


def test_create_records_an_event_saying_who_and_what(api: Api, spec: dict[str, Any]) -> None:
    lb = create(api, spec)
    [event] = events(api, lb["id"])
    assert event["reason"] == "Created"
    assert event["type"] == "Normal"
    assert event["generation"] == 1
    assert "local-developer" in event["message"]
    assert "listeners HTTP:80, HTTPS:443" in event["message"]
    assert "capacity 2-6" in event["message"]


def test_a_taken_name_is_409_and_writes_nothing(api: Api, spec: dict[str, Any], cloud: Cloud) -> None:
    first = create(api, spec)
    before = cloud.table_items()
    response = api.create(spec)
    assert response.status == 409
    problem = response.json()
    assert problem["type"] == "urn:lbcp:problem:name-in-use"
    assert first["id"] in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["name"]
    assert cloud.table_items() == before


def test_classic_tcp_load_balancer_in_one_subnet(api: Api, cloud: Cloud) -> None:
    spec = {
        "name": "db-proxy",
        "type": "classic",
        "vpcId": cloud.account.vpc_id,
        "subnetIds": [cloud.account.subnet_ids[0]],
        "listeners": [
            {"protocol": "TCP", "port": 5432, "defaultBackend": "db"},
            {
                "protocol": "TLS",
                "port": 5433,
                "defaultBackend": "db",
                "certificateArn": cloud.account.certificate_arn,
            },
        ],
        "backends": [
            {
                "name": "db",
                "targets": [{"host": "db.internal", "port": 5432}],
                "healthCheck": {"protocol": "TCP"},
            }
        ],
        "capacity": {"min": 1, "max": 2},
        "entry": {"mode": "dns", "dnsTtlSeconds": 15},
    }
    body = create(api, spec)
    assert body["entry"] == {"mode": "dns", "scheme": "internet-facing", "dnsTtlSeconds": 15}
    assert body["status"]["desiredCapacity"] == 1


def test_an_expired_certificate_is_422_at_the_time_of_the_request(
    api: Api, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Time is an input: run the API with a clock past the seeded certificate's expiry (one year).
    later = datetime.now(UTC) + timedelta(days=400)
    monkeypatch.setattr(Dependencies, "clock", staticmethod(lambda: later))
    dependencies.cache_clear()
    response = api.create(spec)
    assert response.status == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("listeners[1].certificateArn", "expired")


# --- read and list ---------------------------------------------------------------------


def test_get_by_id_and_by_name_return_the_same_resource(api: Api, spec: dict[str, Any]) -> None:
    lb = create(api, spec)
    by_id = api.request("GET", f"/v1/load-balancers/{lb['id']}")
    by_name = api.request("GET", "/v1/load-balancers/web")
    assert by_id.status == by_name.status == 200
    assert by_id.json() == by_name.json() == lb
    assert by_id.header("ETag") == '"1"'


def test_list_is_ordered_by_name_and_paginates(api: Api, spec: dict[str, Any]) -> None:
    for name in ["gamma", "alpha", "delta", "beta", "epsilon"]:
        create(api, spec, name=name)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = "limit=2" + (f"&nextToken={token}" if token else "")
        response = api.request("GET", "/v1/load-balancers", query=query)
        assert response.status == 200
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["name"] for item in page["items"]]
        pages += 1
        token = page["nextToken"]
        if token is None:
            break
    assert seen == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert pages >= 3


def test_list_default_page_has_everything_when_small(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec, name="one")
    page = api.request("GET", "/v1/load-balancers").json()
    assert [item["name"] for item in page["items"]] == ["one"]
    assert page["nextToken"] is None


# --- patch -------------------------------------------------------------------------------


def test_patch_changes_the_spec_bumps_the_generation_and_explains(api: Api, spec: dict[str, Any]) -> None:
    lb = create(api, spec)
    response = patch(api, "web", {"capacity": {"max": 8}, "waf": {"mode": "block"}}, 1)
    assert response.status == 200, response.body
    body = response.json()
    assert body["generation"] == 2
    assert response.header("ETag") == '"2"'
    assert body["capacity"] == {"min": 2, "max": 8}
    assert body["waf"]["mode"] == "block"
    assert body["updatedAt"] >= lb["updatedAt"]
    latest = events(api, "web")[0]
    assert latest["reason"] == "SpecUpdated"
    assert latest["message"].endswith('capacity.max 6 -> 8; waf.mode "detect" -> "block"')
    assert latest["generation"] == 2


def test_patch_null_resets_a_section_to_its_defaults(api: Api, spec: dict[str, Any]) -> None:
    create(api, dict(spec, drain={"connectionThreshold": 50, "timeoutSeconds": 30}))
    body = patch(api, "web", {"drain": None}, 1).json()
    assert body["drain"] == {
        "connectionThreshold": 1,
        "timeoutSeconds": 300,
        "deregistrationGraceSeconds": 30,
        "maxConnectionLifetimeSeconds": 120,
    }


def test_a_create_gets_defaults_that_fit_what_it_set(api: Api, spec: dict[str, Any]) -> None:
    document = copy.deepcopy(spec)
    document["backends"][0]["healthCheck"] = {"protocol": "HTTP", "path": "/healthz", "intervalSeconds": 5}
    document["lifecycle"] = {"heartbeatIntervalSeconds": 20}
    document["waf"] = {"enabled": True}
    response = api.create(document)
    assert response.status == 201, response.body
    body = response.json()
    assert body["backends"][0]["healthCheck"]["timeoutSeconds"] == 4
    assert body["lifecycle"]["unhealthyTimeoutSeconds"] == 40
    assert body["proxy"] == "nginx"


def test_a_patch_names_the_stored_field_it_conflicts_with_and_null_derives_it_again(
    api: Api, spec: dict[str, Any]
) -> None:
    create(api, spec)
    refused = patch(api, "web", {"lifecycle": {"heartbeatIntervalSeconds": 20}}, 1)
    assert refused.status == 400
    [error] = refused.json()["errors"]
    assert error["field"] == "lifecycle.unhealthyTimeoutSeconds"
    assert error["message"] == "30 must be at least twice heartbeatIntervalSeconds (20)"
    body = patch(api, "web", {"lifecycle": {"heartbeatIntervalSeconds": 20, "unhealthyTimeoutSeconds": None}}, 1).json()
    assert body["lifecycle"]["unhealthyTimeoutSeconds"] == 40
    assert body["generation"] == 2


def test_a_patch_that_changes_nothing_keeps_the_generation_and_records_nothing(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    response = patch(api, "web", {"capacity": {"max": 6}}, 1)
    assert response.status == 200
    assert response.json()["generation"] == 1
    assert [e["reason"] for e in events(api, "web")] == ["Created"]


def test_stale_if_match_is_412_with_the_current_etag(api: Api, spec: dict[str, Any], cloud: Cloud) -> None:
    create(api, spec)
    assert patch(api, "web", {"capacity": {"max": 7}}, 1).status == 200
    before = cloud.table_items()
    response = patch(api, "web", {"capacity": {"max": 9}}, 1)
    assert response.status == 412
    assert response.header("ETag") == '"2"'
    assert response.json()["errors"][0]["field"] == "If-Match"
    assert cloud.table_items() == before


def test_if_match_star_and_bare_numbers_are_accepted(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    response = api.request("PATCH", "/v1/load-balancers/web", {"capacity": {"max": 7}}, headers={"If-Match": "*"})
    assert response.status == 200
    response = api.request("PATCH", "/v1/load-balancers/web", {"capacity": {"max": 8}}, headers={"If-Match": "2"})
    assert response.status == 200
    assert response.json()["generation"] == 3


def test_patch_checks_only_what_it_changes_against_the_account(api: Api, spec: dict[str, Any], cloud: Cloud) -> None:
    create(api, spec)
    response = patch(api, "web", {"subnetIds": [cloud.account.subnet_ids[0], cloud.account.spare_subnet_id]}, 1)
    assert response.status == 422
    assert {e["field"] for e in response.json()["errors"]} == {"subnetIds[1]", "subnetIds"}
    listeners = copy.deepcopy(spec["listeners"])
    listeners[1]["certificateArn"] = cloud.account.pending_certificate_arn
    response = patch(api, "web", {"listeners": listeners}, 1)
    assert response.status == 422
    assert response.json()["errors"][0]["field"] == "listeners[1].certificateArn"
    assert "PENDING_VALIDATION" in response.json()["errors"][0]["message"]


def test_concurrent_patches_one_wins_the_other_gets_412(api: Api, spec: dict[str, Any]) -> None:
    # Both read generation 1; the repository's conditional write lets only one through.
    lb = create(api, spec)
    service = dependencies().service
    from lbcp.dal.repository import GenerationMismatch

    first = service.patch(lb["id"], 1, {"capacity": {"max": 7}}, actor="a")
    assert first.changed and first.record.generation == 2
    with pytest.raises(GenerationMismatch) as caught:
        service.patch(lb["id"], 1, {"capacity": {"max": 9}}, actor="b")
    assert caught.value.current.generation == 2
    assert caught.value.current.spec.capacity.max == 7


# --- delete ------------------------------------------------------------------------------


def test_delete_is_202_phase_deleting_and_idempotent(api: Api, spec: dict[str, Any]) -> None:
    lb = create(api, spec)
    response = api.request("DELETE", f"/v1/load-balancers/{lb['id']}")
    assert response.status == 202
    body = response.json()
    assert body["status"]["phase"] == "Deleting"
    assert body["deletionRequestedAt"] is not None
    again = api.request("DELETE", "/v1/load-balancers/web")
    assert again.status == 202
    assert again.json()["deletionRequestedAt"] == body["deletionRequestedAt"]
    assert [e["reason"] for e in events(api, "web")] == ["DeletionRequested", "Created"]
    assert api.request("GET", "/v1/load-balancers/web").json()["status"]["phase"] == "Deleting"


def test_a_load_balancer_being_deleted_cannot_be_patched(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    api.request("DELETE", "/v1/load-balancers/web")
    response = patch(api, "web", {"capacity": {"max": 7}}, 1)
    assert response.status == 409
    assert response.json()["type"] == "urn:lbcp:problem:being-deleted"


def test_delete_with_a_stale_if_match_is_412(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    patch(api, "web", {"capacity": {"max": 7}}, 1)
    response = api.request("DELETE", "/v1/load-balancers/web", headers={"If-Match": '"1"'})
    assert response.status == 412
    assert api.request("GET", "/v1/load-balancers/web").json()["status"]["phase"] == "Pending"


# --- events ------------------------------------------------------------------------------


def test_events_are_newest_first_and_paginate(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    for generation in range(1, 6):
        assert patch(api, "web", {"capacity": {"max": 6 + generation}}, generation).status == 200
    first = api.request("GET", "/v1/load-balancers/web/events", query="limit=4").json()
    assert [e["generation"] for e in first["items"]] == [6, 5, 4, 3]
    second = api.request("GET", "/v1/load-balancers/web/events", query=f"limit=4&nextToken={first['nextToken']}").json()
    assert [e["generation"] for e in second["items"]] == [2, 1]
    times = [e["time"] for e in first["items"] + second["items"]]
    assert times == sorted(times, reverse=True)


def test_a_page_token_from_another_load_balancer_is_refused(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec, name="a")
    create(api, spec, name="b")
    patch(api, "a", {"capacity": {"max": 7}}, 1)
    token = api.request("GET", "/v1/load-balancers/a/events", query="limit=1").json()["nextToken"]
    response = api.request("GET", "/v1/load-balancers/b/events", query=f"nextToken={token}")
    assert response.status == 400
    assert response.json()["errors"][0]["field"] == "nextToken"


def test_events_of_an_unknown_load_balancer_are_404(api: Api) -> None:
    assert api.request("GET", "/v1/load-balancers/lb-0123456789abcdef0/events").status == 404
    assert api.request("GET", "/v1/load-balancers/nobody/events").status == 404


# --- idempotency ---------------------------------------------------------------------------


def test_a_repeated_create_with_the_same_key_returns_the_first_result(
    api: Api, spec: dict[str, Any], cloud: Cloud
) -> None:
    first = api.create(spec, headers={"Idempotency-Key": "create-web-1"})
    items_after_first = cloud.table_items()
    second = api.create(spec, headers={"Idempotency-Key": "create-web-1"})
    assert first.status == second.status == 201
    assert second.json() == first.json()
    assert second.header("Idempotent-Replayed") == "true"
    assert first.header("Idempotent-Replayed") is None
    assert cloud.table_items() == items_after_first  # nothing new written


def test_the_same_key_with_another_body_is_422(api: Api, spec: dict[str, Any]) -> None:
    api.create(spec, headers={"Idempotency-Key": "k"})
    response = api.create(dict(spec, name="other"), headers={"Idempotency-Key": "k"})
    assert response.status == 422
    assert response.json()["type"] == "urn:lbcp:problem:idempotency-key-reused"
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


def test_keys_are_scoped_to_the_caller(api: Api, spec: dict[str, Any]) -> None:
    from lbcp_local.invoke import invoke_api

    assert api.create(spec, headers={"Idempotency-Key": "shared"}).status == 201
    import json

    response = invoke_api(
        "POST",
        "/v1/load-balancers",
        headers={"Content-Type": "application/json", "Idempotency-Key": "shared"},
        body=json.dumps(spec).encode(),
        principal_arn="arn:aws:iam::123456789012:user/someone-else",
    )
    # Not a replay of the first caller's result: a fresh create, which finds the name taken.
    assert response.status == 409
    assert response.json()["type"] == "urn:lbcp:problem:name-in-use"


def test_a_failed_create_does_not_burn_the_key(api: Api, spec: dict[str, Any]) -> None:
    bad = dict(spec, vpcId="vpc-0000000000000000f")
    assert api.create(bad, headers={"Idempotency-Key": "retry-me"}).status == 422
    fixed = api.create(bad | {"vpcId": spec["vpcId"]}, headers={"Idempotency-Key": "retry-me"})
    # The body differs from the failed attempt's, and that is fine: failures leave no record.
    assert fixed.status == 201


def test_a_repeat_while_the_first_is_running_is_409(api: Api, spec: dict[str, Any]) -> None:
    from lbcp_local.events import LocalLambdaContext

    deps = dependencies()
    deps.register_lambda_context(LocalLambdaContext())
    seen: list[int] = []

    def create_that_races() -> dict[str, Any]:
        # While the first request holds the key, a second one arrives.
        inner = api.create(spec, headers={"Idempotency-Key": "race"})
        seen.append(inner.status)
        assert inner.json()["type"] == "urn:lbcp:problem:request-in-progress"
        assert inner.header("Retry-After") == "1"
        return {"id": "lb-0123456789abcdef0", "generation": 1}

    deps.idempotency.run(
        key="race",
        principal="arn:aws:iam::123456789012:user/local-developer",
        body=spec,
        create=create_that_races,
    )
    assert seen == [409]


def test_a_stale_if_match_is_412_even_while_deleting(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    patch(api, "web", {"capacity": {"max": 7}}, 1)
    assert api.request("DELETE", "/v1/load-balancers/web", headers={"If-Match": '"2"'}).status == 202
    assert api.request("DELETE", "/v1/load-balancers/web", headers={"If-Match": '"1"'}).status == 412
    assert api.request("DELETE", "/v1/load-balancers/web", headers={"If-Match": '"2"'}).status == 202


def test_warming_raises_the_desired_capacity_and_shows_in_status(api: Api, spec: dict[str, Any]) -> None:
    create(api, spec)
    response = api.request(
        "POST", "/v1/load-balancers/web/warm", {"floor": 5, "durationSeconds": 3600, "reason": "launch"}
    )
    assert response.status == 200, response.body
    body = response.json()
    assert (body["previousDesiredCapacity"], body["desiredCapacity"], body["warm"]["floor"]) == (2, 5, 5)
    status = api.request("GET", "/v1/load-balancers/web").json()["status"]
    assert status["desiredCapacity"] == 5
    assert status["scaling"]["warm"]["floor"] == 5
    assert status["scaling"]["warm"]["reason"] == "launch"
    assert events(api, "web")[0]["reason"] == "WarmRequested"
    too_big = api.request("POST", "/v1/load-balancers/web/warm", {"floor": 50, "durationSeconds": 3600})
    assert too_big.status == 422
    assert too_big.json()["errors"][0]["field"] == "floor"
    both = api.request("POST", "/v1/load-balancers/web/warm", {"floor": 3, "extra": 1, "durationSeconds": 3600})
    assert both.status == 400


def scaler_deciding_before_each_warm_write(monkeypatch: pytest.MonkeyPatch, races: int) -> list[int]:
    """Before each of the first ``races`` warm writes, a real scaler write lands first (desired 3)."""
    repository = dependencies().load_balancers
    write = repository.set_desired_capacity
    seen: list[int] = []

    def scaler_first(lb_id: str, expected: int, desired: int, scaling: ScalingState, event: Any) -> None:
        if len(seen) < races:
            current = repository.get(lb_id)
            assert current is not None
            write(lb_id, current.scaling_version, 3, current.scaling.model_copy(update={"last_decision": "hot"}), None)
            seen.append(expected)
        write(lb_id, expected, desired, scaling, event)

    monkeypatch.setattr(repository, "set_desired_capacity", scaler_first)
    return seen


def test_a_warm_request_that_lost_to_the_scaler_is_planned_again_on_its_decision(
    api: Api, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lb = create(api, spec)
    raced = scaler_deciding_before_each_warm_write(monkeypatch, races=1)
    response = api.request("POST", "/v1/load-balancers/web/warm", {"floor": 5, "durationSeconds": 600})
    assert response.status == 200, response.body
    assert raced == [0]
    assert (response.json()["previousDesiredCapacity"], response.json()["desiredCapacity"]) == (3, 5)
    stored = dependencies().load_balancers.get(lb["id"])
    assert stored is not None and stored.scaling.last_decision == "hot" and stored.scaling.warm is not None


def test_a_warm_request_that_loses_three_times_is_409_and_writes_no_floor(
    api: Api, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    create(api, spec)
    raced = scaler_deciding_before_each_warm_write(monkeypatch, races=3)
    response = api.request("POST", "/v1/load-balancers/web/warm", {"floor": 5, "durationSeconds": 600})
    assert (response.status, response.header("Retry-After")) == (409, "1")
    assert response.json()["type"] == "urn:lbcp:problem:scaling-contended"
    assert raced == [0, 1, 2]
    assert api.request("GET", "/v1/load-balancers/web").json()["status"]["scaling"]["warm"] is None


def test_an_imported_certificate_is_422_because_agents_cannot_export_it(
    api: Api, spec: dict[str, Any], cloud: Cloud
) -> None:
    listeners = copy.deepcopy(spec["listeners"])
    listeners[1]["certificateArn"] = cloud.account.imported_certificate_arn
    response = api.create({**spec, "listeners": listeners})
    assert response.status == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("listeners[1].certificateArn", "not_exportable")


def test_local_endpoints_show_where_the_local_entry_listens_and_are_absent_in_aws(
    api: Api, spec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbcp.settings import ENV_LOCAL_ENTRY_ENDPOINTS, settings

    lb_id = create(api, spec)["id"]
    assert "localEndpoints" not in api.request("GET", f"/v1/load-balancers/{lb_id}").json()["status"]["entry"]

    endpoints = tmp_path / "endpoints.json"
    monkeypatch.setenv(ENV_LOCAL_ENTRY_ENDPOINTS, str(endpoints))
    settings.cache_clear()
    dependencies.cache_clear()
    # Before the local entry has written anything: none yet.
    assert api.request("GET", f"/v1/load-balancers/{lb_id}").json()["status"]["entry"]["localEndpoints"] == []
    where = [{"listenerPort": 80, "address": "127.0.0.1:41080"}, {"listenerPort": 443, "address": "127.0.0.1:41443"}]
    endpoints.write_text(json.dumps({lb_id: where, "lb-00000000000000000": []}))
    assert api.request("GET", f"/v1/load-balancers/{lb_id}").json()["status"]["entry"]["localEndpoints"] == where
    [listed] = api.request("GET", "/v1/load-balancers").json()["items"]
    assert listed["status"]["entry"]["localEndpoints"] == where


def reconciler_starts_a_rollout(lb_id: str) -> str:
    """The reconciler's status write with a rollout in progress (its planner's part is tested in tests/fleet)."""
    from lbcp.models.rollout import LaunchTemplate, RolloutStatus

    repository = dependencies().load_balancers
    record = repository.get(lb_id)
    assert record is not None
    now = datetime.now(UTC)
    rollout = RolloutStatus(
        id="ro-0123456789ab",
        state="Progressing",
        step="Canary",
        from_template=LaunchTemplate(instance_type="c6i.large", proxy="haproxy"),
        to_template=LaunchTemplate(instance_type="c6i.xlarge", proxy="haproxy"),
        generation=record.generation,
        progress="0 of 2 replaced",
        replaced=0,
        desired=2,
        canary=1,
        message="rolling",
        verdict_key="k",
        started_at=now,
        step_started_at=now,
        last_progress_at=now,
    )
    repository.write_status(lb_id, record.status.model_copy(update={"rollout": rollout}), [], [rollout])
    return rollout.id


def test_get_shows_the_conditions_the_reconcilers_planner_wrote(api: Api, spec: dict[str, Any]) -> None:
    import random

    from lbcp.reconcile.observed import LoadBalancerView
    from lbcp.reconcile.plan import plan

    lb_id = create(api, spec)["id"]
    repository = dependencies().load_balancers
    record = repository.get(lb_id)
    assert record is not None
    # The scaler held for missing metrics: ScalingLimited comes from its memory on the record.
    repository.set_desired_capacity(lb_id, record.scaling_version, 2, ScalingState(hold="missing-metrics"), None)
    record = repository.get(lb_id)
    assert record is not None
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    decided = plan(record, [], LoadBalancerView(), now, rng=random.Random(1))  # nothing built yet
    repository.write_status(lb_id, decided.status, [])
    stored = repository.get(lb_id)
    assert stored is not None and stored.status == decided.status  # the conditions survive the table
    # A minute on, nothing changed: the transition times stay, and the reconciler would write nothing.
    again = plan(stored, [], LoadBalancerView(), now + timedelta(minutes=1), rng=random.Random(1))
    assert again.status.conditions == decided.status.conditions

    status = api.request("GET", "/v1/load-balancers/web").json()["status"]
    assert status["phase"] == "Provisioning"
    conditions = {condition["type"]: condition for condition in status["conditions"]}
    assert [condition["type"] for condition in status["conditions"]] == [
        "Ready", "EntryReady", "CapacityMet", "ConfigApplied", "RolloutProgressing", "ScalingLimited", "Degraded",
    ]  # fmt: skip
    assert conditions["CapacityMet"] == {
        "type": "CapacityMet",
        "status": "False",
        "reason": "NoneRoutable",
        "message": "0 of 2 LBVMs routable; 2 to launch now",
        "lastTransitionTime": "2026-12-01T12:00:00Z",
    }
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "EntryIncomplete")
    limited = conditions["ScalingLimited"]
    assert (limited["status"], limited["reason"]) == ("True", "MetricsMissing")
    assert conditions["ConfigApplied"]["status"] == "Unknown"


def test_rollout_pause_resume_abort_are_idempotent_and_409_without_a_rollout(api: Api, spec: dict[str, Any]) -> None:
    lb_id = create(api, spec)["id"]
    none = api.request("POST", "/v1/load-balancers/web/rollout/pause")
    assert none.status == 409 and (none.header("content-type") or "").startswith("application/problem+json")
    assert none.json()["type"].endswith("no-rollout")
    rollout_id = reconciler_starts_a_rollout(lb_id)

    paused = api.request("POST", "/v1/load-balancers/web/rollout/pause")
    assert paused.status == 200, paused.body
    assert (paused.json()["id"], paused.json()["state"]) == (rollout_id, "Paused")
    again = api.request("POST", "/v1/load-balancers/web/rollout/pause")
    assert again.status == 200 and again.json()["state"] == "Paused"
    assert [e["reason"] for e in events(api, "web")].count("RolloutPauseRequested") == 1  # the repeat wrote nothing
    shown = api.request("GET", "/v1/load-balancers/web").json()["status"]["rollout"]
    assert shown["state"] == "Paused" and shown["waitingFor"].startswith("a resume")

    resumed = api.request("POST", "/v1/load-balancers/web/rollout/resume")
    assert resumed.status == 200 and (resumed.json()["state"], resumed.json()["step"]) == ("Progressing", "Canary")
    aborted = api.request("POST", "/v1/load-balancers/web/rollout/abort")
    assert aborted.status == 200
    assert (aborted.json()["step"], aborted.json()["rejected"]) == ("Rollback", True)
    assert "aborted by" in aborted.json()["message"]
    assert api.request("POST", "/v1/load-balancers/web/rollout/abort").json() == aborted.json()
    assert events(api, "web")[0]["reason"] == "RolloutAbortRequested"

    history = api.request("GET", "/v1/load-balancers/web/rollouts")
    assert history.status == 200
    assert [item["id"] for item in history.json()["items"]] == [rollout_id]
    assert api.request("GET", "/v1/load-balancers/lb-0000000000000000f/rollouts").status == 404


def reconciler_starts_a_config_rollout(lb_id: str, started_at: datetime) -> str:
    """The reconciler's status write with a config rollout in progress (planner side: tests/fleet)."""
    from lbcp.models.config_rollout import ConfigRolloutStatus

    repository = dependencies().load_balancers
    record = repository.get(lb_id)
    assert record is not None
    rollout = ConfigRolloutStatus(
        id="cr-0123456789ab",
        state="Progressing",
        step="Bake",
        from_version=1,
        to_version=2,
        from_digest="d1",
        to_digest="d2",
        canary_lbvms=["lbvm-000000000001"],
        progress="1 of 1 on config version 2",
        applied=1,
        canary=1,
        message="staging",
        started_at=started_at,
        step_started_at=started_at,
        last_progress_at=started_at,
    )
    status = record.status.model_copy(update={"config_rollout": rollout})
    repository.write_status(lb_id, status, [], [rollout])
    return rollout.id


def test_pause_resume_abort_act_on_a_config_rollout_and_kind_picks_one_when_both_are_in_progress(
    api: Api, spec: dict[str, Any]
) -> None:
    lb_id = create(api, spec)["id"]
    config_id = reconciler_starts_a_config_rollout(lb_id, datetime.now(UTC) - timedelta(minutes=5))
    wrong = api.request("POST", "/v1/load-balancers/web/rollout/pause", query="kind=template")
    assert wrong.status == 409 and wrong.json()["type"].endswith("no-rollout")
    assert [(e["field"], e["in"]) for e in wrong.json()["errors"]] == [("kind", "query")]
    assert "no template rollout in progress" in wrong.json()["detail"]
    bogus = api.request("POST", "/v1/load-balancers/web/rollout/pause", query="kind=image")
    assert bogus.status == 400 and [e["field"] for e in bogus.json()["errors"]] == ["kind"]

    paused = api.request("POST", "/v1/load-balancers/web/rollout/pause")
    assert paused.status == 200, paused.body
    body = paused.json()
    assert (body["id"], body["kind"], body["state"], body["pausedStep"]) == (config_id, "config", "Paused", "Bake")
    assert "nobody more is told config version 2" in body["message"]
    assert api.request("POST", "/v1/load-balancers/web/rollout/pause").json()["state"] == "Paused"
    assert [e["reason"] for e in events(api, "web")].count("RolloutPauseRequested") == 1  # the repeat wrote nothing
    assert "config rollout cr-0123456789ab (version 1 -> 2)" in events(api, "web")[0]["message"]
    stored = dependencies().load_balancers.get(lb_id)
    assert stored is not None and stored.rollout_control is None
    assert stored.config_rollout_control is not None and stored.config_rollout_control.rollout_id == config_id

    resumed = api.request("POST", "/v1/load-balancers/web/rollout/resume", query="kind=config")
    assert resumed.status == 200 and (resumed.json()["state"], resumed.json()["step"]) == ("Progressing", "Bake")
    aborted = api.request("POST", "/v1/load-balancers/web/rollout/abort")
    assert aborted.status == 200
    assert (aborted.json()["step"], aborted.json()["rejected"]) == ("Rollback", True)
    assert "every LBVM is told config version 1 again" in aborted.json()["message"]
    assert api.request("POST", "/v1/load-balancers/web/rollout/abort").json() == aborted.json()

    # A template rollout too (started later): without kind, which one is meant is not guessed.
    template_id = reconciler_starts_a_rollout(lb_id)
    both = api.request("POST", "/v1/load-balancers/web/rollout/pause")
    assert both.status == 409 and both.json()["type"].endswith("rollout-ambiguous")
    assert [(e["field"], e["in"], e["code"]) for e in both.json()["errors"]] == [("kind", "query", "required")]
    assert template_id in both.json()["detail"] and config_id in both.json()["detail"]
    template = api.request("POST", "/v1/load-balancers/web/rollout/pause", query="kind=template")
    assert template.status == 200 and (template.json()["id"], template.json()["kind"]) == (template_id, "template")
    stored = dependencies().load_balancers.get(lb_id)
    assert stored is not None and stored.config_rollout_control is not None and stored.rollout_control is not None
    # One request per kind: the template's pause did not replace the config rollout's abort.
    assert (stored.config_rollout_control.action, stored.rollout_control.action) == ("abort", "pause")

    # The history holds both kinds, newest first.
    items = api.request("GET", "/v1/load-balancers/web/rollouts").json()["items"]
    assert [(item["id"], item["kind"]) for item in items] == [(template_id, "template"), (config_id, "config")]
    assert (items[1]["fromVersion"], items[1]["toVersion"]) == (1, 2)
