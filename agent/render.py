"""Two renderers over one model: Jinja2 templates for HAProxy and NGINX.

Every value that reaches a configuration goes through a filter that quotes it
for the proxy at hand and refuses characters that could end or extend a
directive. The spec's types already restrict names, hosts and paths to safe
characters; the filters are the second wall, for paths from the machine
(run and log directories) and for anything a future spec field lets through.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import jinja2

from agent.model import ProxyModel, RenderError, Route

ProxyName = Literal["haproxy", "nginx"]
MAIN_FILE: dict[str, str] = {"haproxy": "haproxy.cfg", "nginx": "nginx.conf"}
TEMPLATES = Path(__file__).parent / "templates"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters of a hostname or a URL path (the spec's PathPrefix): what may appear
# in a routing regex besides the ones the renderers add themselves.
_ROUTE_TEXT = re.compile(r"[A-Za-z0-9._~%/-]*")


def haproxy_quote(value: object) -> str:
    """A HAProxy strong-quoted argument: no escapes and no environment expansion inside single quotes."""
    text = str(value)
    if not text or "'" in text or _CONTROL.search(text):
        raise RenderError(f"cannot write {text!r} into a HAProxy configuration")
    return f"'{text}'"


def nginx_quote(value: object) -> str:
    """An NGINX double-quoted argument; ``$`` would start a variable and ``\\`` an escape, so both are refused."""
    text = str(value)
    if not text or any(char in text for char in '"\\$') or _CONTROL.search(text):
        raise RenderError(f"cannot write {text!r} into an NGINX configuration")
    return f'"{text}"'


_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/+@=-]*")


def plain_path(value: object) -> str:
    """A file path written unquoted (ModSecurity directives): only characters that need no quoting."""
    text = str(value)
    if not _PLAIN_PATH.fullmatch(text):
        raise RenderError(f"cannot write the path {text!r} into a ModSecurity configuration")
    return text


def _literal(text: str) -> str:
    if not _ROUTE_TEXT.fullmatch(text):
        raise RenderError(f"cannot route on {text!r}")
    # '.' is the only regex metacharacter the allowed set contains.
    return text.replace(".", r"\.")


def nginx_route_regex(route: Route) -> str:
    """A regex over ``"$host $request_uri"`` that matches exactly when the route does.

    ``$host`` is lowercase and has no port or spaces, so one space separates the
    two halves; ``$request_uri`` is the raw path (as HAProxy's ``path`` is), and
    a path prefix cannot contain '?', so a prefix match on it is one on the path.
    """
    if route.host is None:
        host = "[^ ]*"
    elif route.host.wildcard:
        host = "[^ ]+" + _literal(route.host.value)
    else:
        host = _literal(route.host.value)
    path = _literal(route.path_prefix) if route.path_prefix else ""
    # nginx keeps "\." inside a quoted string as is (it unescapes only \" \' \\ \t \r \n),
    # and _literal let through nothing else that nginx_quote would refuse.
    return f'"~^{host} {path}"'


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # configuration files, not HTML: quoting is the filters' job
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hq"] = haproxy_quote
    env.filters["nq"] = nginx_quote
    env.filters["nginx_route"] = nginx_route_regex
    env.filters["plain_path"] = plain_path
    return env


_ENV = _environment()


def host_port(address: str | None, port: int) -> str:
    """``address:port`` as both proxies write it; None is every IPv4 address."""
    if address is None:
        return f"*:{port}"
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def render(model: ProxyModel, proxy: ProxyName) -> dict[str, str]:
    """The configuration files of one release, by path relative to the release directory.

    Certificate material is not included: it is written separately, with mode 0600.
    """
    options = model.options
    context = {
        "m": model,
        "o": options,
        "listen": lambda port: host_port(options.bind_address, port),
        "stats": host_port(options.stats_address, options.stats_port),
    }
    if proxy == "haproxy" and model.waf is not None:
        # The spec refuses this combination (lbcp.logic.spec_rules); never serve it without the WAF.
        raise RenderError("the WAF (ModSecurity v3 with the OWASP Core Rule Set) runs on NGINX: set proxy to 'nginx'")
    try:
        if proxy == "haproxy":
            return {MAIN_FILE["haproxy"]: _ENV.get_template("haproxy.cfg.j2").render(context)}
        files = {MAIN_FILE["nginx"]: _ENV.get_template("nginx.conf.j2").render(context)}
        if model.waf is not None:
            files["modsecurity.conf"] = _ENV.get_template("modsecurity.conf.j2").render(context)
        return files
    except jinja2.UndefinedError as exc:  # a template bug, not a user's mistake: say so
        raise RenderError(f"internal error rendering the {proxy} configuration: {exc}") from exc
