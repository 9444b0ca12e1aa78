"""Reading the proxies' own words: HAProxy's master CLI and stats, NGINX's stub_status."""

from __future__ import annotations

import pytest

from agent.proxy.haproxy import ProcTable, parse_frontend_sessions, parse_show_proc
from agent.proxy.nginx import parse_stub_status
from agent.proxy.process import ProxyFailed

SHOW_PROC_26 = """#<PID>          <type>          <reloads>       <uptime>        <version>
24957           master          4 [failed: 1]   0d00h10m20s     2.6.12-1+deb12u3
# workers
31025           worker          0               0d00h00m00s     2.6.12-1+deb12u3
# old workers
30792           worker          1               0d00h00m01s     2.6.12-1+deb12u3
30701           worker          2               0d00h00m09s     2.6.12-1+deb12u3
# programs

"""
SHOW_PROC_24 = """#<PID>          <type>          <relative PID>  <reloads>       <uptime>        <version>
1162            master          0               2               0d00h02m07s     2.4.22
# workers
1271            worker          1               0               0d00h00m00s     2.4.22
"""


def test_show_proc_names_current_and_old_workers_and_the_failed_reload_count() -> None:
    assert parse_show_proc(SHOW_PROC_26) == ProcTable(reloads=4, failed=1, current=(31025,), old=(30792, 30701))


def test_show_proc_of_an_older_haproxy_without_a_failed_count() -> None:
    table = parse_show_proc(SHOW_PROC_24)
    assert (table.failed, table.current, table.old) == (0, (1271,), ())


def test_only_public_frontends_count_as_client_connections() -> None:
    csv = (
        "# pxname,svname,qcur,qmax,scur,smax,slim\n"
        "lbcp_stats,FRONTEND,,,1,1,2000\n"
        "l_80,FRONTEND,,,12,30,2000\n"
        "l_443,FRONTEND,,,5,9,2000\n"
        "b_app_http,t0,0,0,17,30,\n"
        "b_app_http,BACKEND,0,0,17,30,200\n"
    )
    assert parse_frontend_sessions(csv) == 17


def test_stub_status_minus_the_status_request_itself() -> None:
    body = b"Active connections: 7 \nserver accepts handled requests\n 10 10 12 \nReading: 0 Writing: 1 Waiting: 6 \n"
    assert parse_stub_status(body) == 6
    assert parse_stub_status(b"Active connections: 1 \n") == 0
    with pytest.raises(ProxyFailed):
        parse_stub_status(b"<html>not the status page</html>")
