"""lbctl against the real local runtime (and, for SigV4 and scripted failures, a recording HTTP server).

Most tests call ``lbctl.main.main`` in-process against the session's local
runtime; one runs the installed console script. Names are unique per test
because the runtime is shared by the whole session.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import pytest
import requests
import yaml

from lbcp_local.seed import LocalAccount, example_spec
from lbctl.client import is_loopback, normalize_endpoint, region_from_host
from lbctl.documents import merge_patch_from_assignments
from lbctl.errors import UsageError
from lbctl.main import main

LBCTL_BINARY = Path(sys.executable).parent / "lbctl"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"


class Runtime(Protocol):
    api_url: str
    account: LocalAccount


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Lbctl = Callable[..., Result]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def invoke(capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str | None = None) -> Result:
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(argv)
    finally:
        sys.stdin = saved
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.fixture
def runtime(local_runtime: Runtime) -> Runtime:
    return local_runtime


@pytest.fixture
def lbctl(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> Lbctl:
    """Run lbctl in-process against the local runtime; global options go after the command."""

    def run(*args: str, stdin: str | None = None) -> Result:
        return invoke(capsys, [*args, "--endpoint", runtime.api_url], stdin)

    return run


@pytest.fixture
def make_spec(runtime: Runtime) -> Callable[..., dict[str, Any]]:
    def make(prefix: str = "cli", **overrides: Any) -> dict[str, Any]:
        spec = example_spec(runtime.account, name=unique(prefix))
        spec.update(overrides)
        return spec

    return make


def api_get(runtime: Runtime, path: str) -> requests.Response:
    return requests.get(f"{runtime.api_url}{path}", timeout=10)


def create_lb(lbctl: Lbctl, tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    result = lbctl("create", "-f", str(path), "--json")
    assert result.code == 0, result.err
    lb: dict[str, Any] = result.json()
    return lb


# --- a recording HTTP server (for SigV4 and for scripted answers) ----------------------


@dataclass
class Recorded:
    method: str
    path: str  # with the query string, as sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class RecordingServer:
    answer: Callable[[Recorded], Answer | None]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


def json_answer(status: int, document: Any, headers: dict[str, str] | None = None) -> Answer:
    content_type = "application/problem+json" if status >= 400 else "application/json"
    return status, {"Content-Type": content_type, **(headers or {})}, json.dumps(document).encode()


@pytest.fixture
def recording_server() -> Iterator[Callable[[Callable[[Recorded], Answer | None]], RecordingServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[Recorded], Answer | None]) -> RecordingServer:
        state = RecordingServer(answer)

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(
                    self.command, self.path, list(self.headers.items()), self.rfile.read(length) if length else b""
                )
                state.requests.append(recorded)
                reply = state.answer(recorded)
                if reply is None:  # drop the connection without an answer
                    self.close_connection = True
                    return
                status, headers, body = reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def forwarding(upstream: str, drop_first: str) -> Callable[[Recorded], Answer | None]:
    """Forward to the real API, but swallow the answer to the first ``drop_first`` request (a lost response)."""
    dropped: list[bool] = []

    def answer(request: Recorded) -> Answer | None:
        headers = {k: v for k, v in request.headers if k.lower() not in ("host", "content-length", "connection")}
        response = requests.request(
            request.method, upstream + request.path, headers=headers, data=request.body or None, timeout=10
        )
        if request.method == drop_first and not dropped:
            dropped.append(True)
            return None
        forwarded = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "connection")}
        return response.status_code, forwarded, response.content

    return answer


# --- help, usage and local input -------------------------------------------------------------


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, ["--help"])
    assert result.code == 0
    for line in ("0  success", "2  usage error", "3  the API rejected", "4  not found", "5  conflict"):
        assert line in result.out
    assert "HTTP 400, 413, 415, 422, 428" in result.out
    assert "409" in result.out and "412" in result.out
    import lbctl.main as module

    assert module.__doc__ is not None and "Exit codes:" in module.__doc__


@pytest.mark.parametrize(
    "argv",
    [
        ["create"],  # no -f
        ["frobnicate"],
        ["list", "--limit", "0"],
        ["patch", "web"],  # neither -f nor --set
        ["patch", "web", "-f", "x.yaml", "--set", "a=1"],
        ["patch", "web", "--set", "a=1", "--if-match", "three"],
        ["delete", "web", "--wait-timeout", "-1"],
        ["describe", "web", "--events", "0"],
        ["why"],  # no REF
        ["why", "web", "capacity", "phase"],
    ],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    result = invoke(capsys, argv)
    assert result.code == 2
    assert "usage: lbctl" in result.err


def test_missing_and_invalid_files_exit_2_without_a_request(
    lbctl: Lbctl, tmp_path: Path, recording_server: Callable[..., RecordingServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = recording_server(lambda request: json_answer(500, {}))
    missing = tmp_path / "nope.yaml"
    result = invoke(capsys, ["create", "-f", str(missing), "--endpoint", server.url])
    assert result.code == 2
    assert "no such file" in result.err and str(missing) in result.err

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: web\nlisteners: [\n")
    result = invoke(capsys, ["create", "-f", str(bad_yaml), "--endpoint", server.url])
    assert result.code == 2 and "bad.yaml: not valid YAML or JSON" in result.err and "line 3" in result.err

    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text("name: a\ncapacity: {min: 1, max: 2}\nname: b\n")
    result = invoke(capsys, ["create", "-f", str(duplicate), "--endpoint", server.url])
    assert result.code == 2 and "'name' appears twice" in result.err

    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": "web",}')
    result = invoke(capsys, ["create", "-f", str(bad_json), "--endpoint", server.url])
    assert result.code == 2 and "not valid JSON" in result.err and "line 1" in result.err

    for text in ("- a\n- b\n", "a: 1\n---\nb: 2\n", "when: 2026-01-01\n"):
        result = invoke(capsys, ["create", "-f", "-", "--endpoint", server.url], stdin=text)
        assert result.code == 2, text
    result = invoke(capsys, ["patch", "web", "--set", "capacity.max", "--endpoint", server.url])
    assert result.code == 2 and "expected PATH=VALUE" in result.err
    result = invoke(capsys, ["get", "web", "--endpoint", "ftp://example.com"])
    assert result.code == 2 and "--endpoint" in result.err
    assert server.requests == []  # nothing was sent for any of them
    assert lbctl("create", "-f", str(missing)).code == 2


def test_set_values_are_json_when_they_parse() -> None:
    patch = merge_patch_from_assignments(
        [
            "capacity.max=8",
            "waf.enabled=true",
            "entry.dnsTtlSeconds=null",
            "proxy=nginx",
            'tags.count="8"',
            "tags.note=hello world",
            "scaling.metrics.cpu.target=62.5",
            'subnetIds=["subnet-1","subnet-2"]',
            "tags.empty=",
        ]
    )
    assert patch == {
        "capacity": {"max": 8},
        "waf": {"enabled": True},
        "entry": {"dnsTtlSeconds": None},
        "proxy": "nginx",
        "tags": {"count": "8", "note": "hello world", "empty": ""},
        "scaling": {"metrics": {"cpu": {"target": 62.5}}},
        "subnetIds": ["subnet-1", "subnet-2"],
    }
    for bad in (["a"], ["a..b=1"], ["listeners[0].port=81"], ["a.b=1", "a=2"], ["a=1", "a=2"]):
        with pytest.raises(UsageError):
            merge_patch_from_assignments(bad)


def test_endpoint_helpers() -> None:
    assert normalize_endpoint("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080"
    assert normalize_endpoint("https://abc.execute-api.eu-west-1.amazonaws.com") == (
        "https://abc.execute-api.eu-west-1.amazonaws.com"
    )
    assert is_loopback("http://127.0.0.1:8080") and is_loopback("http://localhost:1") and is_loopback("http://[::1]:9")
    assert not is_loopback("https://abc.execute-api.eu-west-1.amazonaws.com")
    assert region_from_host("https://a1b2c3.execute-api.ap-southeast-2.amazonaws.com/") == "ap-southeast-2"
    assert region_from_host("https://api.example.com") is None


# --- create ------------------------------------------------------------------------------------


def test_create_from_yaml_then_get_shows_every_section(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    spec = make_spec("yaml")
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    created = lbctl("create", "-f", str(path))
    assert created.code == 0, created.err
    lb_id = re.search(r"ID:\s+(lb-[0-9a-f]{17})", created.out)
    assert lb_id is not None
    assert f"Created load balancer {spec['name']} ({lb_id[1]})" in created.out
    assert re.search(r"Generation:\s+1\b", created.out) and re.search(r"Phase:\s+Pending", created.out)

    shown = lbctl("get", spec["name"])
    assert shown.code == 0, shown.err
    out = shown.out
    for pattern in (
        rf"Name:\s+{spec['name']}",
        rf"ID:\s+{lb_id[1]}",
        r"Type:\s+application",
        r"Generation:\s+1",
        r"Phase:\s+Pending",
        r"Observed generation:\s+0",
        r"Desired capacity:\s+2 \(min 2, max 6\)",
        r"DNS name:\s+-",
        r"PROTOCOL\s+PORT\s+DEFAULT BACKEND",
        r"HTTP\s+80\s+app",
        rf"HTTPS\s+443\s+app\s+1\s+60s\s+{re.escape(spec['listeners'][1]['certificateArn'])}",
        r"HTTPS:443\s+0\s+-\s+/api/\s+api",
        r"NAME\s+TARGETS\s+HEALTH CHECK",
        r"app\s+10\.20\.1\.10:8080, 10\.20\.2\.10:8080\s+HTTP /healthz every 10s",
        r"api\s+10\.20\.1\.20:9000",
        r"LBVMs:",
    ):
        assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"
    assert lbctl("get", lb_id[1]).out == out  # by id, the same


def test_create_from_json_file_and_from_stdin(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path, runtime: Runtime
) -> None:
    from_file = make_spec("json")
    path = tmp_path / "lb.json"
    path.write_text(json.dumps(from_file, indent=2))
    assert lbctl("create", "-f", str(path)).code == 0
    from_stdin = make_spec("stdin")
    result = lbctl("create", "-f", "-", stdin=yaml.safe_dump(from_stdin))
    assert result.code == 0, result.err
    for spec in (from_file, from_stdin):
        stored = api_get(runtime, f"/v1/load-balancers/{spec['name']}")
        assert stored.status_code == 200
        assert stored.json()["backends"][0]["targets"] == spec["backends"][0]["targets"]


def test_create_twice_with_one_idempotency_key_makes_one_load_balancer(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path, runtime: Runtime
) -> None:
    spec = make_spec("idem")
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump(spec))
    key = str(uuid.uuid4())
    first = lbctl("create", "-f", str(path), "--idempotency-key", key, "--json")
    second = lbctl("create", "-f", str(path), "--idempotency-key", key)
    assert first.code == 0 and second.code == 0, second.err
    assert "created by an earlier request with this Idempotency-Key" in second.out
    assert first.json()["id"] in second.out
    listed = lbctl("list", "--limit", "100", "--all", "--json").json()["items"]
    assert [lb["id"] for lb in listed if lb["name"] == spec["name"]] == [first.json()["id"]]

    # The same key with another body is refused; without a key, the name is taken.
    path.write_text(yaml.safe_dump(dict(spec, capacity={"min": 1, "max": 3})))
    reused = lbctl("create", "-f", str(path), "--idempotency-key", key)
    assert reused.code == 3 and "different request body" in reused.err
    assert lbctl("create", "-f", str(path)).code == 5


def test_create_retries_a_lost_response_with_the_same_key(
    runtime: Runtime,
    make_spec: Callable[..., dict[str, Any]],
    tmp_path: Path,
    recording_server: Callable[..., RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = recording_server(forwarding(runtime.api_url, drop_first="POST"))
    spec = make_spec("lost")
    path = tmp_path / "lb.json"
    path.write_text(json.dumps(spec))
    result = invoke(capsys, ["create", "-f", str(path), "--endpoint", proxy.url])
    assert result.code == 0, result.err
    assert "retrying" in result.err
    posts = [r for r in proxy.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[0].header("Idempotency-Key") == posts[1].header("Idempotency-Key")
    assert posts[0].body == posts[1].body
    stored = api_get(runtime, f"/v1/load-balancers/{spec['name']}").json()
    assert f"({stored['id']})" in result.out and stored["generation"] == 1


def test_create_retries_5xx_and_honours_retry_after(
    tmp_path: Path, recording_server: Callable[..., RecordingServer], capsys: pytest.CaptureFixture[str]
) -> None:
    lb = {"id": "lb-0123456789abcdef0", "name": "web", "generation": 1, "status": {"phase": "Pending"}}

    def answer(request: Recorded) -> Answer:
        if len(server.requests) == 1:
            busy = {"type": "urn:lbcp:problem:service-unavailable", "title": "busy", "status": 503, "detail": "x"}
            return json_answer(503, busy, {"Retry-After": "0"})
        return json_answer(201, lb)

    server = recording_server(answer)
    path = tmp_path / "lb.yaml"
    path.write_text("name: web\n")
    result = invoke(capsys, ["create", "-f", str(path), "--endpoint", server.url])
    assert result.code == 0, result.err
    assert "HTTP 503" in result.err and "retrying in 0.0s" in result.err
    keys = {r.header("Idempotency-Key") for r in server.requests}
    assert len(server.requests) == 2 and len(keys) == 1 and None not in keys

    server.answer = lambda request: json_answer(503, {"title": "busy", "status": 503, "detail": "still busy"})
    server.requests.clear()
    result = invoke(capsys, ["create", "-f", str(path), "--endpoint", server.url, "--retries", "1"])
    assert result.code == 1 and "still busy" in result.err and len(server.requests) == 2


def test_unreachable_endpoint_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    from lbcp_local.ports import free_port

    result = invoke(capsys, ["list", "--endpoint", f"http://127.0.0.1:{free_port()}", "--retries", "0"])
    assert result.code == 1
    assert "cannot reach" in result.err and "make local" in result.err


# --- list --------------------------------------------------------------------------------------


def test_list_shows_columns_and_all_follows_next_token(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        create_lb(lbctl, tmp_path, make_spec(name=name))

    table = lbctl("list", "--limit", "100", "--all")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "TYPE", "PHASE", "DESIRED", "ROUTABLE", "GEN", "AGE"]
    for name in names:
        row = next(line for line in lines if line.startswith(name + " "))
        assert re.fullmatch(rf"{name}\s+lb-[0-9a-f]{{17}}\s+application\s+Pending\s+2\s+0\s+1\s+\d+s", row), row

    one_page = lbctl("list", "--limit", "1")
    assert len(one_page.out.splitlines()) == 2  # header and one row
    token = re.search(r"--next-token (\S+)\)", one_page.err)
    assert token is not None
    next_page = lbctl("list", "--limit", "1", "--next-token", token[1])
    assert next_page.code == 0 and next_page.out.splitlines()[1] != one_page.out.splitlines()[1]

    everything = lbctl("list", "--limit", "1", "--all", "--json").json()
    listed = [lb["name"] for lb in everything["items"]]
    assert everything["nextToken"] is None
    assert all(listed.count(name) == 1 for name in names)
    assert len(listed) == len(set(listed)) >= 3
    assert listed == sorted(listed)  # the API orders by name
    assert sorted(listed) == sorted(
        lb["name"] for lb in lbctl("list", "--limit", "100", "--all", "--json").json()["items"]
    )


# --- patch -------------------------------------------------------------------------------------


def test_patch_set_sends_typed_values(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path, runtime: Runtime
) -> None:
    spec = make_spec("set", entry={"mode": "dns", "dnsTtlSeconds": 60})
    create_lb(lbctl, tmp_path, spec)
    result = lbctl(
        "patch",
        spec["name"],
        "--set", "capacity.max=8",
        "--set", "waf.enabled=true",
        "--set", "proxy=nginx",
        "--set", "entry.dnsTtlSeconds=null",
        "--set", "tags.team=web platform",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"Patched {spec['name']}" in result.out and "generation 1 -> 2" in result.out
    for line in (
        "capacity.max: 6 -> 8",
        "waf.enabled: false -> true",
        'proxy: "haproxy" -> "nginx"',
        "entry.dnsTtlSeconds: 60 -> null",
        'tags.team: (absent) -> "web platform"',
    ):
        assert line in result.out
    stored = api_get(runtime, f"/v1/load-balancers/{spec['name']}").json()
    assert stored["capacity"]["max"] == 8 and type(stored["capacity"]["max"]) is int
    assert stored["waf"]["enabled"] is True
    assert stored["proxy"] == "nginx"
    assert stored["entry"] == {"mode": "dns", "scheme": "internet-facing", "dnsTtlSeconds": None}
    assert stored["tags"] == {"team": "web platform"}
    assert stored["generation"] == 2

    again = lbctl("patch", spec["name"], "--set", "capacity.max=8")
    assert again.code == 0 and "No change" in again.out and "generation 2" in again.out


def test_patch_from_file_and_with_if_match(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    spec = make_spec("pfile")
    create_lb(lbctl, tmp_path, spec)
    patch = tmp_path / "patch.yaml"
    patch.write_text("capacity:\n  max: 5\ndrain:\n  timeoutSeconds: 30\n")
    result = lbctl("patch", spec["name"], "-f", str(patch))
    assert result.code == 0, result.err
    assert "generation 1 -> 2" in result.out
    assert "capacity.max: 6 -> 5" in result.out and "drain.timeoutSeconds: 300 -> 30" in result.out

    result = lbctl("patch", spec["name"], "--set", "capacity.min=3", "--if-match", "2")
    assert result.code == 0, result.err
    assert "generation 2 -> 3" in result.out and "capacity.min: now 3" in result.out


def test_patch_with_a_stale_generation_exits_5(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path, runtime: Runtime
) -> None:
    spec = make_spec("stale")
    create_lb(lbctl, tmp_path, spec)
    assert lbctl("patch", spec["name"], "--set", "capacity.max=5").code == 0
    result = lbctl("patch", spec["name"], "--set", "capacity.max=4", "--if-match", "1")
    assert result.code == 5
    assert result.out == ""
    assert "The resource has changed (HTTP 412)" in result.err
    assert "at generation 2" in result.err
    assert "  If-Match: stale: current generation is 2" in result.err
    assert api_get(runtime, f"/v1/load-balancers/{spec['name']}").json()["capacity"]["max"] == 5


def test_invalid_patch_and_spec_exit_3_naming_the_fields(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path, runtime: Runtime
) -> None:
    spec = make_spec("bad")
    spec["listeners"][0]["port"] = 0
    spec["capacity"] = {"min": 0, "max": 6}
    spec["colour"] = "blue"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    result = lbctl("create", "-f", str(path))
    assert result.code == 3
    assert "The request is invalid (HTTP 400)" in result.err
    for field_name in ("listeners[0].port", "capacity.min", "colour"):
        assert re.search(rf"^  {re.escape(field_name)}: ", result.err, re.MULTILINE), result.err
    assert api_get(runtime, f"/v1/load-balancers/{spec['name']}").status_code == 404

    impossible = make_spec("nosubnet", subnetIds=[runtime.account.other_vpc_subnet_id, runtime.account.subnet_ids[1]])
    path.write_text(json.dumps(impossible))
    result = lbctl("create", "-f", str(path))
    assert result.code == 3 and "(HTTP 422)" in result.err and "  subnetIds[0]: " in result.err

    good = make_spec("badpatch")
    create_lb(lbctl, tmp_path, good)
    result = lbctl("patch", good["name"], "--set", "capacity.min=9", "--set", "waf.mode=paranoid")
    assert result.code == 3 and "  waf.mode: " in result.err
    result = lbctl("patch", good["name"], "--set", "name=renamed")
    assert result.code == 3 and "  name: cannot change after creation" in result.err


def test_unknown_load_balancer_exits_4(lbctl: Lbctl) -> None:
    ghost = unique("ghost")
    for argv in (
        ["get", ghost],
        ["events", ghost],
        ["delete", ghost],
        ["patch", ghost, "--set", "capacity.max=3"],
        ["get", "lb-0123456789abcdef0"],
    ):
        result = lbctl(*argv)
        assert result.code == 4, argv
        assert "No such resource (HTTP 404)" in result.err and "  id: no such load balancer" in result.err
        assert result.out == ""


def test_duplicate_name_exits_5(lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    spec = make_spec("dup")
    first = create_lb(lbctl, tmp_path, spec)
    result = lbctl("create", "-f", str(tmp_path / f"{spec['name']}.json"))
    assert result.code == 5
    assert "The name is already in use (HTTP 409)" in result.err
    assert first["id"] in result.err and "  name: already in use" in result.err


# --- delete and events -------------------------------------------------------------------------


def test_delete_then_events_newest_first(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    spec = make_spec("del")
    lb = create_lb(lbctl, tmp_path, spec)
    assert lbctl("patch", spec["name"], "--set", "capacity.max=4").code == 0
    assert lbctl("delete", spec["name"], "--if-match", "1").code == 5  # stale: it is at 2

    deleted = lbctl("delete", spec["name"], "--if-match", "2")
    assert deleted.code == 0, deleted.err
    assert f"Deleting load balancer {spec['name']} ({lb['id']}): phase Deleting." in deleted.out
    # This runtime runs no reconciler: the load balancer stays Deleting.
    assert re.search(r"Phase:\s+Deleting", lbctl("get", lb["id"]).out)
    assert re.search(
        rf"{spec['name']}\s+{lb['id']}\s+application\s+Deleting", lbctl("list", "--limit", "100", "--all").out
    )
    changed = lbctl("patch", spec["name"], "--set", "capacity.max=5")
    assert changed.code == 5 and "is being deleted" in changed.err

    events = lbctl("events", lb["id"])  # by id: events outlive the load balancer
    assert events.code == 0
    lines = events.out.splitlines()
    assert lines[0].split() == ["TIME", "TYPE", "REASON", "MESSAGE"]
    # The reconciler's own events (launches, drains) interleave with the API's.
    api_lines = [line for line in lines[1:] if line.split()[2] in ("DeletionRequested", "SpecUpdated", "Created")]
    assert [line.split()[2] for line in api_lines] == ["DeletionRequested", "SpecUpdated", "Created"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+Normal\s+SpecUpdated\s+generation 1 -> 2 by ", api_lines[1])
    limited = lbctl("events", lb["id"], "--limit", "1")
    assert len(limited.out.splitlines()) == 2 and "older events not shown" in limited.err


def test_delete_wait_follows_the_teardown_until_404(
    fleet_runtime: Runtime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The runtime with the whole fleet machinery: its reconciler really tears down.
    def lbctl(*args: str, stdin: str | None = None) -> Result:
        return invoke(capsys, [*args, "--endpoint", fleet_runtime.api_url], stdin)

    spec = example_spec(fleet_runtime.account, name=unique("wait"))
    lb = create_lb(lbctl, tmp_path, spec)
    waited = lbctl("delete", lb["id"], "--wait", "--wait-timeout", "120", "--poll-interval", "0.5")
    assert waited.code == 0, waited.err
    progress = [line.split("Z  ", 1)[1] for line in waited.out.splitlines() if line.startswith("  ")]
    assert progress[0].startswith("phase Deleting")
    assert progress[-1] == "deleted"
    assert f"Deleted load balancer {spec['name']} ({lb['id']})." in waited.out
    assert lbctl("get", lb["id"]).code == 4


# --- --json ------------------------------------------------------------------------------------


def test_json_output_is_the_apis_json(
    lbctl: Lbctl, make_spec: Callable[..., dict[str, Any]], tmp_path: Path, runtime: Runtime
) -> None:
    spec = make_spec("json-out")
    created = create_lb(lbctl, tmp_path, spec)
    got = lbctl("get", spec["name"], "--json")
    assert got.code == 0 and got.err == ""
    from_api = api_get(runtime, f"/v1/load-balancers/{spec['name']}").json()
    assert got.json() == from_api == created  # no reconciler runs in the local runtime to change status
    events = lbctl("events", spec["name"], "--json").json()
    assert events == api_get(runtime, f"/v1/load-balancers/{spec['name']}/events").json()
    page = lbctl("list", "--limit", "2", "--json").json()
    assert page == api_get(runtime, "/v1/load-balancers?limit=2").json()
    patched = lbctl("patch", spec["name"], "--set", "capacity.max=7", "--json").json()
    assert patched == api_get(runtime, f"/v1/load-balancers/{created['id']}").json()


# --- the installed command ---------------------------------------------------------------------


def test_installed_binary(runtime: Runtime, make_spec: Callable[..., dict[str, Any]]) -> None:
    assert LBCTL_BINARY.exists(), "make setup installs the console script"
    spec = make_spec("bin")
    env = {**os.environ, "LBCTL_ENDPOINT": runtime.api_url + "/v1"}  # the URL `make local` prints
    created = subprocess.run(
        [str(LBCTL_BINARY), "create", "-f", "-"],
        input=yaml.safe_dump(spec),
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=30,
    )
    assert created.returncode == 0, created.stderr
    assert f"Created load balancer {spec['name']}" in created.stdout
    missing = subprocess.run(
        [str(LBCTL_BINARY), "--json", "get", unique("ghost")],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=30,
    )
    assert missing.returncode == 4 and missing.stdout == "" and "HTTP 404" in missing.stderr


# --- SigV4 -------------------------------------------------------------------------------------


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def assert_signed(request: Recorded, base_url: str, token: str | None = None) -> None:
    """The Authorization header is a valid SigV4 signature of exactly the request that arrived."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = request.header("Authorization") or ""
    match = re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/(\d{{8}})/{REGION}/execute-api/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        authorization,
    )
    assert match, authorization
    signed = match[2].split(";")
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)
    amz_date = request.header("X-Amz-Date") or ""
    assert amz_date.startswith(match[1])
    assert request.header("X-Amz-Content-SHA256") == hashlib.sha256(request.body).hexdigest()
    if token is not None:
        assert request.header("X-Amz-Security-Token") == token and "x-amz-security-token" in signed
    for name in ("content-type", "if-match", "idempotency-key"):
        if request.header(name) is not None:
            assert name in signed, f"{name} is sent but not signed"

    replay = AWSRequest(
        method=request.method,
        url=base_url + request.path,
        data=request.body,
        headers={name: request.header(name) for name in signed},
    )
    replay.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "execute-api", REGION)
    canonical = signer.canonical_request(replay)
    assert canonical.split("\n")[-1] == hashlib.sha256(request.body).hexdigest()
    assert match[3] == signer.signature(signer.string_to_sign(replay, canonical), replay)


def test_sigv4_signs_what_is_sent(
    aws_credentials: None,
    recording_server: Callable[..., RecordingServer],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lb = {"id": "lb-0123456789abcdef0", "name": "web", "generation": 4, "status": {"phase": "Pending"}}

    def answer(request: Recorded) -> Answer:
        if request.method == "POST":
            return json_answer(201, lb)
        if request.method == "PATCH":
            return json_answer(200, {**lb, "generation": 5, "capacity": {"max": 8}})
        if request.path.startswith("/v1/load-balancers?"):
            return json_answer(200, {"items": [lb], "nextToken": None})
        return json_answer(200, lb)

    server = recording_server(answer)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: web\ncapacity: {min: 1, max: 2}\ntags: {note: 'héllo wörld'}\n")
    sign = ["--endpoint", server.url, "--sign", "--region", REGION]
    assert invoke(capsys, [*sign, "create", "-f", str(spec), "--idempotency-key", "key-1"]).code == 0
    assert invoke(capsys, [*sign, "list", "--limit", "5", "--next-token", "a b+c/=="]).code == 0
    assert invoke(capsys, [*sign, "patch", "web", "--set", "capacity.max=8"]).code == 0
    methods = [(r.method, r.path.split("?")[0]) for r in server.requests]
    assert methods == [
        ("POST", "/v1/load-balancers"),
        ("GET", "/v1/load-balancers"),
        ("GET", "/v1/load-balancers/web"),
        ("PATCH", "/v1/load-balancers/lb-0123456789abcdef0"),
    ]
    post, listing, _, patch = server.requests
    assert json.loads(post.body)["tags"] == {"note": "héllo wörld"}
    assert "nextToken=a%20b%2Bc%2F%3D%3D" in listing.path
    assert patch.header("Content-Type") == "application/merge-patch+json" and patch.header("If-Match") == '"4"'
    for request in server.requests:
        assert_signed(request, server.url)

    # Temporary credentials carry their session token, signed too.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-123")
    server.requests.clear()
    assert invoke(capsys, [*sign, "get", "web"]).code == 0
    assert_signed(server.requests[0], server.url, token="token-123")

    # Loopback endpoints are not signed unless asked.
    server.requests.clear()
    assert invoke(capsys, ["--endpoint", server.url, "get", "web"]).code == 0
    assert server.requests[0].header("Authorization") is None


def test_signing_without_credentials_or_region_exits_2(
    aws_credentials: None,
    recording_server: Callable[..., RecordingServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = recording_server(lambda request: json_answer(200, {}))
    result = invoke(capsys, ["--endpoint", server.url, "--sign", "get", "web"])
    assert result.code == 2 and "no region" in result.err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke(capsys, ["--endpoint", server.url, "--sign", "--region", REGION, "get", "web"])
    assert result.code == 2 and "no AWS credentials" in result.err
    assert server.requests == []


def test_forbidden_from_api_gateway_exits_1_with_a_hint(
    recording_server: Callable[..., RecordingServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = recording_server(lambda request: (403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}'))
    result = invoke(capsys, ["--endpoint", server.url, "get", "web"])
    assert result.code == 1
    assert "HTTP 403" in result.err and "Forbidden" in result.err and "SigV4" in result.err


def test_patch_is_not_resent_after_a_lost_response(
    runtime: Runtime,
    lbctl: Lbctl,
    make_spec: Callable[..., dict[str, Any]],
    recording_server: Callable[..., RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = make_spec("lostpatch")
    assert lbctl("create", "-f", "-", stdin=json.dumps(spec)).code == 0
    proxy = recording_server(forwarding(runtime.api_url, drop_first="PATCH"))
    result = invoke(capsys, ["patch", spec["name"], "--set", "capacity.max=5", "--endpoint", proxy.url])
    assert result.code == 1
    assert "may or may not have been applied" in result.err
    assert [r.method for r in proxy.requests] == ["GET", "PATCH"]
    stored = api_get(runtime, f"/v1/load-balancers/{spec['name']}").json()
    assert (stored["generation"], stored["capacity"]["max"]) == (2, 5)  # applied once, the answer was lost


def test_rollout_status_history_and_a_pause_without_a_rollout(
    lbctl: Lbctl, tmp_path: Path, make_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = make_spec("rollout")
    create_lb(lbctl, tmp_path, spec)
    status = lbctl("rollout", "status", spec["name"])
    assert (status.code, status.out.strip()) == (0, "No rollout.")
    assert lbctl("rollout", "history", spec["name"]).out.strip() == "No rollouts."
    paused = lbctl("rollout", "pause", spec["name"])
    assert paused.code == 5 and "no rollout in progress" in paused.err


def test_rollout_status_shows_state_step_progress_and_why_it_waits(
    recording_server: Callable[[Callable[[Recorded], Answer | None]], RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    rollout = {
        "id": "ro-0123456789ab",
        "state": "Progressing",
        "step": "Canary",
        "fromTemplate": {"instanceType": "c6i.large", "imageId": "ami-0aaaaaaaaaaaaaaaa", "proxy": "haproxy"},
        "toTemplate": {"instanceType": "c6i.large", "imageId": "ami-0bbbbbbbbbbbbbbbb", "proxy": "haproxy"},
        "progress": "0 of 3 replaced",
        "canary": 1,
        "launched": ["lbvm-000000000001"],
        "failed": [],
        "waitingFor": "1 canary LBVM(s) to pass the health gate",
        "message": "rolling",
        "startedAt": "2026-11-28T12:00:00Z",
    }
    server = recording_server(
        lambda request: json_answer(200, rollout if "pause" in request.path else {"status": {"rollout": rollout}})
    )
    shown = invoke(capsys, ["--endpoint", server.url, "rollout", "status", "web"])
    assert shown.code == 0, shown.err
    for pattern in (
        r"State:\s+Progressing \(step Canary\)",
        r"From:\s+c6i\.large from ami-0aaaaaaaaaaaaaaaa running haproxy",
        r"Progress:\s+0 of 3 replaced",
        r"Launched:\s+1 \(0 failed\)",
        r"Waiting for:\s+1 canary LBVM\(s\) to pass the health gate",
    ):
        assert re.search(pattern, shown.out), f"{pattern!r} not in:\n{shown.out}"
    paused = invoke(capsys, ["--endpoint", server.url, "rollout", "pause", "web"])
    assert paused.code == 0 and server.requests[-1].method == "POST"
    assert server.requests[-1].path == "/v1/load-balancers/web/rollout/pause"


def test_rollout_status_shows_a_newer_image_and_the_ami_a_followed_template_resolved_to(
    recording_server: Callable[[Callable[[Recorded], Answer | None]], RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    latest = {"instanceType": "c6i.large", "imageId": None, "proxy": "haproxy"}
    rollout = {
        "id": "ro-0123456789ab",
        "state": "Progressing",
        "step": "Canary",
        "fromTemplate": {**latest, "latestImage": "ami-0aaaaaaaaaaaaaaaa"},
        "toTemplate": {**latest, "latestImage": "ami-0bbbbbbbbbbbbbbbb"},
        "progress": "0 of 3 replaced",
        "message": "rolling",
    }
    newer = {"imageId": "ami-0bbbbbbbbbbbbbbbb", "message": "a newer image is available: ami-0bbbbbbbbbbbbbbbb (...)"}
    answers = iter([{"status": {"rollout": rollout, "newerImage": newer}}, {"status": {"newerImage": newer}}])
    server = recording_server(lambda request: json_answer(200, next(answers)))
    shown = invoke(capsys, ["--endpoint", server.url, "rollout", "status", "web"])
    assert shown.code == 0, shown.err
    for pattern in (
        r"From:\s+c6i\.large from the latest Amazon Linux 2023 \(ami-0aaaaaaaaaaaaaaaa\) running haproxy",
        r"To:\s+c6i\.large from the latest Amazon Linux 2023 \(ami-0bbbbbbbbbbbbbbbb\) running haproxy",
        r"Newer image:\s+a newer image is available: ami-0bbbbbbbbbbbbbbbb",
    ):
        assert re.search(pattern, shown.out), f"{pattern!r} not in:\n{shown.out}"
    # No rollout yet: the newer image is still worth saying.
    alone = invoke(capsys, ["--endpoint", server.url, "rollout", "status", "web"])
    assert alone.out.splitlines()[0] == "No rollout."
    assert re.search(r"Newer image:\s+a newer image is available", alone.out), alone.out


CONFIG_ROLLOUT = {
    "id": "cr-0123456789ab",
    "kind": "config",
    "state": "Paused",
    "step": "Bake",
    "pausedStep": "Bake",
    "fromVersion": 1,
    "toVersion": 2,
    "canaryLbvms": ["lbvm-000000000001"],
    "pausedLbvms": ["lbvm-000000000001"],
    "canary": 1,
    "progress": "1 of 1 on config version 2",
    "waitingFor": "a resume (paused by alice)",
    "message": "paused by alice at step Bake",
    "startedAt": "2026-11-28T12:10:00Z",
}
TEMPLATE_ROLLOUT = {
    "id": "ro-0123456789ab",
    "kind": "template",
    "state": "Succeeded",
    "fromTemplate": {"instanceType": "c6i.large", "imageId": "ami-0aaaaaaaaaaaaaaaa", "proxy": "haproxy"},
    "toTemplate": {"instanceType": "c6i.xlarge", "imageId": "ami-0aaaaaaaaaaaaaaaa", "proxy": "haproxy"},
    "progress": "3 of 3 replaced",
    "message": "3 of 3 LBVMs on c6i.xlarge, all healthy",
    "startedAt": "2026-11-28T12:00:00Z",
    "finishedAt": "2026-11-28T12:05:00Z",
}


def test_rollout_status_pause_and_history_show_config_rollouts_beside_template_ones(
    recording_server: Callable[[Callable[[Recorded], Answer | None]], RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def answer(request: Recorded) -> Answer:
        if request.path.split("?")[0].endswith("/rollouts"):
            return json_answer(200, {"items": [CONFIG_ROLLOUT, TEMPLATE_ROLLOUT], "nextToken": None})
        if "/rollout/" in request.path:
            return json_answer(200, CONFIG_ROLLOUT)
        return json_answer(200, {"status": {"rollout": TEMPLATE_ROLLOUT, "configRollout": CONFIG_ROLLOUT}})

    server = recording_server(answer)
    shown = invoke(capsys, ["--endpoint", server.url, "rollout", "status", "web"])
    assert shown.code == 0, shown.err
    template, config = shown.out.split("\n\n")
    assert re.search(r"Rollout:\s+ro-0123456789ab \(template\)", template)
    assert re.search(r"To:\s+c6i\.xlarge from ami-0aaaaaaaaaaaaaaaa running haproxy", template)
    for pattern in (
        r"Rollout:\s+cr-0123456789ab \(config\)",
        r"State:\s+Paused \(step Bake\)",
        r"From:\s+config version 1",
        r"To:\s+config version 2",
        r"Canary:\s+1 \(lbvm-000000000001\)",
        r"Kept on it:\s+lbvm-000000000001",
        r"Waiting for:\s+a resume \(paused by alice\)",
    ):
        assert re.search(pattern, config), f"{pattern!r} not in:\n{config}"
    only = invoke(capsys, ["--endpoint", server.url, "--json", "rollout", "status", "web", "--kind", "config"])
    assert json.loads(only.out) == CONFIG_ROLLOUT
    both = invoke(capsys, ["--endpoint", server.url, "--json", "rollout", "status", "web"])
    assert json.loads(both.out) == {"rollout": TEMPLATE_ROLLOUT, "configRollout": CONFIG_ROLLOUT}

    resumed = invoke(capsys, ["--endpoint", server.url, "rollout", "resume", "web", "--kind", "config"])
    assert resumed.code == 0, resumed.err
    assert (server.requests[-1].method, server.requests[-1].path) == (
        "POST",
        "/v1/load-balancers/web/rollout/resume?kind=config",
    )

    history = invoke(capsys, ["--endpoint", server.url, "rollout", "history", "web"])
    assert history.code == 0, history.err
    header, first, second = history.out.splitlines()[:3]
    assert header.split()[:4] == ["ID", "KIND", "STARTED", "STATE"]
    assert first.split()[:2] == ["cr-0123456789ab", "config"] and "config version 1" in first
    assert "config version 2" in first
    assert second.split()[:2] == ["ro-0123456789ab", "template"] and "c6i.xlarge" in second


def test_rollout_pause_of_a_kind_not_in_progress_exits_5_saying_so(
    lbctl: Lbctl, tmp_path: Path, make_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = make_spec("rollout-kind")
    create_lb(lbctl, tmp_path, spec)
    wrong = lbctl("rollout", "pause", spec["name"], "--kind", "config")
    assert wrong.code == 5 and "no config rollout in progress" in wrong.err
    assert lbctl("rollout", "pause", spec["name"], "--kind", "image").code == 2  # argparse: not a kind


# --- plan, lbvm -------------------------------------------------------------------------

PLAN = {
    "loadBalancerId": "lb-0123456789abcdef0", "generation": 3, "plannedAt": "2026-12-01T12:00:00Z",
    "phase": "Active", "plannedPhase": "Degraded", "message": "1 of 2 LBVMs routable, 1 draining",
    "template": "c6i.large from ami-0aaaaaaaaaaaaaaaa running haproxy", "noop": False, "inSync": False,
    "jobs": [
        {"action": "RequestDrain", "eventReason": "DrainRequested", "warning": False, "lbvmId": "lbvm-00000000000a",
         "drainReason": "scale-in", "drawnFrom": ["lbvm-00000000000a", "lbvm-00000000000b"],
         "reason": "lbvm-00000000000a in subnet-a: 3 LBVMs for a desired capacity of 2; draining the excess"},
        {"action": "RegisterTarget", "eventReason": "RegistrationRepaired", "warning": True,
         "lbvmId": "lbvm-00000000000c", "reason": "lbvm-00000000000c is Routable but i-0c is not registered"},
    ],
    "rolloutNotes": [],
    "diff": [
        {"field": "capacity", "desired": "2", "observed": "3", "inSync": False, "note": "3 routable"},
        {"field": "lbvms[subnet-b]", "desired": "1", "observed": "1", "inSync": True, "note": "subnet"},
    ],
}  # fmt: skip


def test_plan_prints_the_jobs_with_their_signs_and_only_the_fields_out_of_sync(
    recording_server: Callable[[Callable[[Recorded], Answer | None]], RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = recording_server(lambda request: json_answer(200, PLAN))
    shown = invoke(capsys, ["--endpoint", server.url, "plan", "web"])
    assert shown.code == 0, shown.err
    assert server.requests[-1].method == "GET" and server.requests[-1].path == "/v1/load-balancers/web/plan"
    for pattern in (
        r"Phase:\s+Active -> Degraded",
        r"Converging on:\s+c6i\.large from ami-0aaaaaaaaaaaaaaaa running haproxy",
        r"\n  - RequestDrain: lbvm-00000000000a in subnet-a: 3 LBVMs",
        r"drawn at random from: lbvm-00000000000a, lbvm-00000000000b",
        r"\n  \+ RegisterTarget: lbvm-00000000000c is Routable",
        r"~\s+capacity\s+3 -> 2\s+3 routable",
        r"Plan: 0 to launch, 1 to drain, 1 other; 1 field\(s\) out of sync, 1 in sync\.",
    ):
        assert re.search(pattern, shown.out), f"{pattern!r} not in:\n{shown.out}"
    assert "lbvms[subnet-b]" not in shown.out
    every = invoke(capsys, ["--endpoint", server.url, "plan", "web", "--all"])
    assert re.search(r"lbvms\[subnet-b\]\s+1\s+subnet", every.out), every.out
    as_json = invoke(capsys, ["--endpoint", server.url, "plan", "web", "--json"])
    assert as_json.json() == PLAN


def test_plan_and_lbvm_against_the_local_runtime(
    lbctl: Lbctl, tmp_path: Path, make_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = make_spec("plan")
    lb = create_lb(lbctl, tmp_path, spec)
    planned = lbctl("plan", spec["name"], "--json")
    assert planned.code == 0, planned.err
    assert planned.json()["loadBalancerId"] == lb["id"]
    assert {field["field"] for field in planned.json()["diff"]} >= {"capacity", "instances", "entry"}
    text = lbctl("plan", spec["name"])
    assert text.code == 0 and re.search(r"\n\s+~\s+capacity\s", text.out), text.out
    missing = lbctl("lbvm", spec["name"], "lbvm-0000000000ff")
    assert missing.code == 4 and "lbvm-0000000000ff" in missing.err
    malformed = lbctl("lbvm", spec["name"], "nope")
    assert malformed.code == 3 and "lbvmId" in malformed.err


def test_lbvm_prints_why_it_exists_its_state_its_execution_and_its_events(
    recording_server: Callable[[Callable[[Recorded], Answer | None]], RecordingServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:execution:lbcp-lifecycle:lbvm-00000000000a"
    detail = {
        "lbvmId": "lbvm-00000000000a", "loadBalancerId": "lb-0123456789abcdef0", "subnetId": "subnet-a",
        "availabilityZone": "eu-west-1a", "state": "Draining", "stateSince": "2026-12-01T12:10:00Z",
        "createdAt": "2026-12-01T11:00:00Z", "launchedGeneration": 2, "launchReason": "launching an LBVM in subnet-a",
        "appliedConfigVersion": 3, "lastHeartbeatAt": "2026-12-01T12:09:30Z", "agentError": "proxy refused config",
        "drainRequestedAt": "2026-12-01T12:10:00Z", "drainReason": "scale-in", "executionArn": arn,
        "executionConsoleUrl": f"https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/{arn}",
        "events": [{"time": "2026-12-01T12:10:00Z", "type": "Normal", "reason": "Draining", "message": "draining it"}],
        "eventsTruncated": False,
    }  # fmt: skip
    server = recording_server(lambda request: json_answer(200, detail))
    shown = invoke(capsys, ["--endpoint", server.url, "lbvm", "web", "lbvm-00000000000a"])
    assert shown.code == 0, shown.err
    assert server.requests[-1].path == "/v1/load-balancers/web/lbvms/lbvm-00000000000a"
    for pattern in (
        r"State:\s+Draining since 2026-12-01T12:10:00Z",
        r"Launch reason:\s+launching an LBVM in subnet-a",
        r"Config version:\s+3",
        r"Last heartbeat:\s+2026-12-01T12:09:30Z \(",
        r"Agent error:\s+proxy refused config",
        r"Drain:\s+scale-in, requested 2026-12-01T12:10:00Z",
        rf"Execution:\s+{re.escape(arn)}",
        r"Console:\s+https://eu-west-1\.console\.aws\.amazon\.com/states/",
        r"2026-12-01T12:10:00Z\s+Normal\s+Draining\s+draining it",
    ):
        assert re.search(pattern, shown.out), f"{pattern!r} not in:\n{shown.out}"


def test_describe_and_why_against_the_local_runtime(
    lbctl: Lbctl, tmp_path: Path, make_spec: Callable[..., dict[str, Any]]
) -> None:
    # The API-only runtime has no reconciler: the load balancer stays Pending, without conditions yet.
    spec = make_spec("describe")
    lb = create_lb(lbctl, tmp_path, spec)
    shown = lbctl("describe", spec["name"])
    assert shown.code == 0, shown.err
    for pattern in (
        rf"Name:\s+{re.escape(spec['name'])} \({lb['id']}\)",
        r"Phase:\s+Pending\n",
        r"Capacity:\s+min 2, desired 2, max 6",
        r"Conditions:\n  \(none yet: the reconciler has not acted on it\)",
        r"Scaling:\n  Policy:\s+noise-aware \(default\)",
        r"    - never below capacity\.min 2 nor above capacity\.max 6",
        r"Events \(last 1, newest first\):\n.*\n  \S+\s+Normal\s+Created\s",
    ):
        assert re.search(pattern, shown.out), f"{pattern!r} not in:\n{shown.out}"
    as_json = lbctl("describe", spec["name"], "--json").json()
    assert as_json["loadBalancer"]["id"] == lb["id"] and [e["reason"] for e in as_json["events"]] == ["Created"]

    phase = lbctl("why", spec["name"])
    assert phase.code == 0 and phase.out.startswith("phase is Pending: the reconciler has not acted on generation 1")
    capacity = lbctl("why", spec["name"], "capacity")
    assert capacity.code == 0
    assert capacity.out.startswith("desired capacity is 2 because it is capacity.min, and the scaler has not"), capacity
    missing = lbctl("why", spec["name"], "lbvm-0000000000ff")
    assert missing.code == 4 and "lbvm-0000000000ff" in missing.err
    wrong = lbctl("why", spec["name"], "everything")
    assert wrong.code == 2 and "capacity, phase or an LBVM id" in wrong.err
