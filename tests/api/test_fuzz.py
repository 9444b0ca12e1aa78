"""Property: no request a client can send gets a 5xx or leaves a partial write.

Three generators, each against the real handler and moto:

- mutated specs: a valid spec with keys dropped, values replaced by any JSON
  (huge integers, unicode, nested junk, nulls) or unknown keys added, POSTed;
- merge patches: random JSON documents, and random patches shaped like the
  spec, PATCHed onto an existing load balancer with a correct If-Match;
- raw bodies: random bytes with random content types, POSTed or PATCHed.

Every response must be below 500; a 4xx must be application/problem+json and
leave the table exactly as it was; a 2xx must read back equal through GET.

The ``api`` and ``cloud`` fixtures are per test function, so the examples of
one test share an account: names are made unique per example, and the table
is snapshotted per example.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from lbcp_local.seed import LocalAccount, example_spec

if TYPE_CHECKING:
    from lbcp_local.invoke import ApiResponse
    from tests.conftest import Api, Cloud

COLLECTION = "/v1/load-balancers"
PROBLEM = "application/problem+json"
MERGE_PATCH = "application/merge-patch+json"

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # nothing written outside the tests; failures print a reproduce blob
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no explain: keeps it fast
)

Json = Any
PathPart = str | int

# --- specs ----------------------------------------------------------------------------


def full_spec(account: LocalAccount, name: str) -> dict[str, Any]:
    """A valid spec that sets every optional section explicitly, so mutations reach every field."""
    spec = example_spec(account, name)
    spec["listeners"][0]["idleTimeoutSeconds"] = 120
    spec["listeners"][1]["rules"].append({"host": "*.example.com", "pathPrefix": "/v2/", "backend": "app"})
    spec["backends"][1]["healthCheck"] = {
        "protocol": "HTTP",
        "path": "/",
        "intervalSeconds": 10,
        "timeoutSeconds": 5,
        "healthyThreshold": 3,
        "unhealthyThreshold": 3,
    }
    thresholds = {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 60.0}
    spec.update(
        proxy="nginx",
        instance={"type": "c6i.large", "imageId": account.image_id},
        entry={"mode": "dns", "scheme": "internal", "dnsTtlSeconds": 30},
        waf={"enabled": True, "mode": "block", "paranoiaLevel": 2},
        lifecycle={"pendingTimeoutSeconds": 600, "unhealthyTimeoutSeconds": 30, "heartbeatIntervalSeconds": 5},
        drain={"connectionThreshold": 1, "timeoutSeconds": 300},
        scaling={
            "policy": "vote",
            "cooldownSeconds": 600,
            "scaleInStabilizationSeconds": 300,
            "metrics": {
                "cpu": dict(thresholds),
                "memory": dict(thresholds),
                "activeConnections": {"scaleOutAbove": 2000.0, "scaleInBelow": 500.0, "target": 1500.0},
            },
        },
        rollout={"strategy": "rolling", "maxSurge": 1, "maxUnavailable": 0},
        tags={"team": "web", "cost-centre": "42"},
    )
    return spec


def leaf_paths(document: Json, prefix: tuple[PathPart, ...] = ()) -> list[tuple[PathPart, ...]]:
    """Every path in a document (containers and leaves), in document order."""
    paths: list[tuple[PathPart, ...]] = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            paths.extend(leaf_paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            paths.extend(leaf_paths(value, (*prefix, index)))
    return paths


# Placeholders for values that exist only in the account of the running test.
ACCOUNT_VALUES = {
    "$vpc": lambda a: a.vpc_id,
    "$other-vpc": lambda a: a.other_vpc_id,
    "$subnet-0": lambda a: a.subnet_ids[0],
    "$subnet-1": lambda a: a.subnet_ids[1],
    "$spare-subnet": lambda a: a.spare_subnet_id,
    "$other-vpc-subnet": lambda a: a.other_vpc_subnet_id,
    "$certificate": lambda a: a.certificate_arn,
    "$image": lambda a: a.image_id,
    "$pending-certificate": lambda a: a.pending_certificate_arn,
    "$imported-certificate": lambda a: a.imported_certificate_arn,
}


def with_account(value: Json, account: LocalAccount) -> Json:
    if isinstance(value, str) and value in ACCOUNT_VALUES:
        return ACCOUNT_VALUES[value](account)
    if isinstance(value, list):
        return [with_account(item, account) for item in value]
    if isinstance(value, dict):
        return {key: with_account(item, account) for key, item in value.items()}
    return value


# --- strategies -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, 2, -1, 65535, 65536, 100, 101, 2**31, 2**63, 10**30, -(10**30)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, 1e308, -0.0, 2.0, 1e-300]),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(
        [
            "",
            "HTTP",
            "HTTPS",
            "TCP",
            "TLS",
            "application",
            "classic",
            "nginx",
            "haproxy",
            "dns",
            "pool",
            "block",
            "/",
            "/api/",
            "/a b",
            '/a"',
            "/a;b",
            "/a\n",
            "api.example.com",
            "*.example.com",
            "web",
            "app",
            "api",
            "lb-0123456789abcdef0",
            "subnet-0123456789abcdef0",
            "vpc-0123456789abcdef0",
            "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
            "\u0000",
            "\ud800",
            "\N{PILE OF POO}",
            "a" * 300,
            *ACCOUNT_VALUES,
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


domain_strings = st.sampled_from(
    [
        "HTTP",
        "HTTPS",
        "TCP",
        "TLS",
        "application",
        "classic",
        "nginx",
        "haproxy",
        "dns",
        "pool",
        "internal",
        "detect",
        "block",
        "target-tracking",
        "step",
        "/",
        "/api/",
        "/v3/",
        "app",
        "api",
        "www.example.com",
        "10.20.1.30",
        "c6i.xlarge",
        *ACCOUNT_VALUES,
    ]
)


def plausible(original: Json) -> st.SearchStrategy[Json]:
    """A value of the original's type near it: the kind of change that may well be valid."""
    if isinstance(original, bool):
        return st.booleans()
    if isinstance(original, int):
        return st.integers(min_value=-2, max_value=min(abs(original), 10**6) * 2 + 5)
    if isinstance(original, float):
        return st.floats(min_value=0, max_value=min(abs(original), 1e6) * 2 + 5)
    if isinstance(original, str):
        variants = [original + suffix for suffix in ("", "2", "-x", "\n", " ", ";", "\u00e9")]
        return st.one_of(domain_strings, st.sampled_from([*variants, original.upper(), original[:-1]]))
    if isinstance(original, list) and original:
        return st.lists(st.sampled_from(original), min_size=1, max_size=len(original) + 1)
    return json_values


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """The example or the full spec with one to three mutations: drop, replace, add an unknown key."""
    spec = draw(st.sampled_from(["example", "full"]))
    template = full_spec(_TEMPLATE_ACCOUNT, "web") if spec == "full" else example_spec(_TEMPLATE_ACCOUNT, "web")
    document: dict[str, Any] = copy.deepcopy(template)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = leaf_paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = document
        for part in path[:-1]:
            parent = parent[part]
        operation = draw(st.sampled_from(["drop", "replace", "nudge", "nudge", "add"]))
        if operation == "drop":
            del parent[path[-1]]
        elif operation == "replace":
            parent[path[-1]] = draw(json_values)
        elif operation == "nudge":
            parent[path[-1]] = draw(plausible(parent[path[-1]]))
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return document


# The templates are drawn before a test's account exists: placeholders stand for its ids.
_TEMPLATE_ACCOUNT = LocalAccount(
    region="us-east-1",
    vpc_id="$vpc",
    subnet_ids=["$subnet-0", "$subnet-1"],
    availability_zones=["us-east-1a", "us-east-1b"],
    spare_subnet_id="$spare-subnet",
    other_vpc_id="$other-vpc",
    other_vpc_subnet_id="$other-vpc-subnet",
    certificate_arn="$certificate",
    imported_certificate_arn="$imported-certificate",
    pending_certificate_arn="$pending-certificate",
    image_id="$image",
    broken_image_id="$broken-image",
)


def patch_like(template: Json) -> st.SearchStrategy[Json]:
    """A merge patch shaped like ``template``: objects merge key by key, anything else is replaced."""
    if isinstance(template, dict):
        return st.fixed_dictionaries(
            {}, optional={key: st.one_of(st.none(), patch_like(value), json_values) for key, value in template.items()}
        )
    if isinstance(template, list):
        return st.one_of(st.just(template), st.lists(st.sampled_from(template), max_size=4), json_values)
    return st.one_of(st.just(template), json_values)


merge_patches = st.one_of(
    json_values,
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    patch_like(full_spec(_TEMPLATE_ACCOUNT, "web")),
)

# Media types are case-insensitive: any casing of the two JSON types is still JSON.
json_content_types = st.sampled_from(["application/json", MERGE_PATCH, "application/json; charset=utf-8"]).flatmap(
    lambda media_type: st.lists(st.booleans(), min_size=len(media_type), max_size=len(media_type)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(media_type, upper, strict=True))
    )
)
content_types = st.one_of(
    json_content_types,
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            MERGE_PATCH,
            "application/json-patch+json",
            "application/problem+json",
            "text/plain",
            "text/json",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "",
            ";",
        ]
    ),
    st.text(max_size=30),
)


def nested(depth: int, objects: bool, in_a_field: bool) -> bytes:
    """``[[[...]]]`` or ``{"a": {"a": ...}}``, ``depth`` levels deep."""
    document = b'{"a": ' * depth + b"{}" + b"}" * depth if objects else b"[" * depth + b"]" * depth
    return b'{"tags": ' + document + b"}" if in_a_field else document


bodies = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(min_size=1, max_size=64).map(lambda chunk: b'{"name": ' + chunk + b"}"),
    # Deep nesting within the 64 KiB limit, bare or inside a spec field.
    st.builds(
        nested,
        st.one_of(st.integers(min_value=1, max_value=12_000), st.sampled_from([999, 1_001, 3_000, 10_000])),
        st.booleans(),
        st.booleans(),
    ),
    st.just(b"{}"),
)


idempotency_keys = st.one_of(
    st.none(),
    st.none(),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12),
    st.text(max_size=8),
)

# --- checks -----------------------------------------------------------------------------


def send(api: Api, method: str, path: str, *, raw: bytes | None, headers: dict[str, str]) -> ApiResponse:
    try:
        return api.request(method, path, raw=raw, headers=headers)
    except Exception as exc:  # the Lambda itself failed: API Gateway would answer 502
        pytest.fail(f"the handler raised {exc!r} instead of answering (API Gateway would return 502)")


def check_outcome(response: ApiResponse, cloud: Cloud, before: list[dict[str, Any]]) -> None:
    note(f"-> {response.status} {response.body[:600]!r}")
    event(f"status {response.status}")
    assert response.status < 500, f"{response.status}: {response.body[:800]!r}"
    if response.status >= 400:
        content_type = (response.header("Content-Type") or "").split(";")[0].strip()
        assert content_type == PROBLEM, f"a {response.status} must be a problem, not {content_type!r}"
        problem = response.json()
        assert problem["status"] == response.status
        assert str(problem["type"]).startswith("urn:lbcp:problem:")
        assert isinstance(problem["errors"], list)
        assert cloud.table_items() == before, f"a refused request ({response.status}) changed the table"


def check_reads_back(api: Api, response: ApiResponse) -> None:
    """The resource a 2xx returned is what GET returns now."""
    written = response.json()
    read = api.request("GET", f"{COLLECTION}/{written['id']}")
    assert read.status == 200, read.body
    assert read.json() == written
    assert read.header("ETag") == response.header("ETag") == f'"{written["generation"]}"'


# --- properties -------------------------------------------------------------------------


@settings(FUZZ, max_examples=120)
@given(document=mutated_specs(), idempotency_key=idempotency_keys)
def test_mutated_specs_never_fail_the_server(
    api: Api, cloud: Cloud, document: dict[str, Any], idempotency_key: str | None
) -> None:
    spec = with_account(document, cloud.account)
    if spec.get("name") == "web":  # untouched by the mutation: unique per example, so creates can succeed
        spec["name"] = f"fuzz-{next(_names)}"
    headers = {"content-type": "application/json"}
    if idempotency_key is not None:
        # Unique per example: a repeated key with another body is a (correct) 422 every time.
        headers["Idempotency-Key"] = f"{idempotency_key}-{next(_names)}" if idempotency_key else ""
    note(f"POST {json.dumps(spec)[:2000]}")
    before = cloud.table_items()

    response = send(api, "POST", COLLECTION, raw=json.dumps(spec).encode(), headers=headers)

    check_outcome(response, cloud, before)
    if response.status < 300:
        assert response.status == 201
        check_reads_back(api, response)


@settings(FUZZ, max_examples=100)
@given(patch=merge_patches, content_type=st.sampled_from([MERGE_PATCH, "application/json"]))
def test_random_merge_patches_never_fail_the_server(
    api: Api, cloud: Cloud, lb: dict[str, Any], patch: Json, content_type: str
) -> None:
    patch = with_account(patch, cloud.account)
    current = api.request("GET", f"{COLLECTION}/{lb['id']}")
    assert current.status == 200, current.body
    generation = current.json()["generation"]
    note(f"PATCH (If-Match {generation}) {json.dumps(patch)[:2000]}")
    before = cloud.table_items()

    response = send(
        api,
        "PATCH",
        f"{COLLECTION}/{lb['id']}",
        raw=json.dumps(patch).encode(),
        headers={"content-type": content_type, "If-Match": f'"{generation}"'},
    )

    check_outcome(response, cloud, before)
    if response.status < 300:
        assert response.status == 200
        assert response.json()["generation"] in (generation, generation + 1)
        check_reads_back(api, response)


@settings(FUZZ, max_examples=80)
@given(request=st.tuples(st.sampled_from(["POST", "PATCH"]), bodies, content_types))
def test_random_bytes_never_fail_the_server(
    api: Api, cloud: Cloud, lb: dict[str, Any], request: tuple[str, bytes, str]
) -> None:
    method, body, content_type = request
    if method == "POST":
        path, headers = COLLECTION, {"content-type": content_type}
    else:
        generation = api.request("GET", f"{COLLECTION}/{lb['id']}").json()["generation"]
        path, headers = f"{COLLECTION}/{lb['id']}", {"content-type": content_type, "If-Match": str(generation)}
    note(f"{method} {path} content-type={content_type!r} body={body[:500]!r}")
    before = cloud.table_items()

    response = send(api, method, path, raw=body, headers=headers)

    check_outcome(response, cloud, before)
    if response.status < 300:
        check_reads_back(api, response)


@settings(FUZZ, max_examples=50)
@given(if_match=st.text(max_size=30), idempotency_key=st.text(max_size=300))
def test_random_headers_never_fail_the_server(
    api: Api, cloud: Cloud, lb: dict[str, Any], if_match: str, idempotency_key: str
) -> None:
    before = cloud.table_items()
    patched = send(
        api,
        "PATCH",
        f"{COLLECTION}/{lb['id']}",
        raw=b'{"capacity": {"max": 7}}',
        headers={"content-type": MERGE_PATCH, "If-Match": if_match},
    )
    check_outcome(patched, cloud, before)
    if patched.status < 300:
        check_reads_back(api, patched)

    before = cloud.table_items()
    spec = example_spec(cloud.account, f"fuzz-{next(_names)}")
    created = send(
        api,
        "POST",
        COLLECTION,
        raw=json.dumps(spec).encode(),
        headers={"content-type": "application/json", "Idempotency-Key": idempotency_key},
    )
    check_outcome(created, cloud, before)
    if created.status < 300:
        check_reads_back(api, created)


_names = itertools.count()


@pytest.fixture
def lb(api: Api, cloud: Cloud) -> dict[str, Any]:
    """A load balancer with every optional section set, to patch."""
    created = api.create(full_spec(cloud.account, "fuzz-target"))
    assert created.status == 201, created.body
    body: dict[str, Any] = created.json()
    return body


def test_the_templates_are_valid(api: Api, cloud: Cloud) -> None:
    """The fuzzers start from valid specs, so that one mutation can be the only mistake."""
    for name, spec in (("plain", example_spec(cloud.account, "plain")), ("full", full_spec(cloud.account, "full"))):
        created = api.create(spec)
        assert created.status == 201, f"{name}: {created.body!r}"
        check_reads_back(api, created)
