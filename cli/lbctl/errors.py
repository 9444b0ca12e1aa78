"""What can go wrong in lbctl, and the exit code each failure maps to."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected, transport, 5xx, any response not listed below, --wait timed out
EXIT_USAGE = 2  # bad arguments, unreadable or invalid local file, no credentials or region to sign with
EXIT_INVALID = 3  # the API rejected the request as invalid: 400, 413, 415, 422, 428
EXIT_NOT_FOUND = 4  # 404
EXIT_CONFLICT = 5  # 409 (name in use, being deleted, key in use), 412 (stale If-Match)

_EXIT_BY_STATUS = {
    400: EXIT_INVALID,
    413: EXIT_INVALID,
    415: EXIT_INVALID,
    422: EXIT_INVALID,
    428: EXIT_INVALID,
    404: EXIT_NOT_FOUND,
    409: EXIT_CONFLICT,
    412: EXIT_CONFLICT,
}


def exit_code_for_status(status: int) -> int:
    return _EXIT_BY_STATUS.get(status, EXIT_ERROR)


class LbctlError(Exception):
    """A failure reported to the user as ``lines`` on stderr, ending lbctl with ``exit_code``."""

    exit_code = EXIT_ERROR

    def lines(self) -> list[str]:
        return [f"lbctl: {self}"]


class UsageError(LbctlError):
    """Bad arguments or local input: nothing was sent (or could be sent)."""

    exit_code = EXIT_USAGE


class TransportError(LbctlError):
    """The API could not be reached, or it answered with something that is not the API."""

    exit_code = EXIT_ERROR


class WaitTimeout(LbctlError):
    exit_code = EXIT_ERROR


class ApiError(LbctlError):
    """The API answered with an error status; ``problem`` is its problem document, if it sent one."""

    def __init__(
        self, method: str, path: str, status: int, *, reason: str, problem: dict[str, Any] | None, text: str
    ) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {reason}")
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.problem = problem
        self.text = text
        self.exit_code = exit_code_for_status(status)

    @property
    def problem_type(self) -> str:
        return str((self.problem or {}).get("type", ""))

    def field_errors(self) -> list[dict[str, Any]]:
        errors = (self.problem or {}).get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    def lines(self) -> list[str]:
        if self.problem is not None:
            title = str(self.problem.get("title") or self.reason)
            detail = str(self.problem.get("detail") or "")
            lines = [f"Error: {title} (HTTP {self.status})"]
            if detail:
                lines.append(detail)
            for error in self.field_errors():
                field = str(error.get("field") or "(request)")
                lines.append(f"  {field}: {error.get('message', '')}")
            return lines
        # Not a problem document: API Gateway's own answers ({"message": "Forbidden"}), a proxy's page.
        lines = [f"Error: HTTP {self.status} {self.reason} from {self.method} {self.path}"]
        if self.text.strip():
            lines.append(self.text.strip()[:500])
        if self.status in (401, 403):
            lines.append(
                "  (a deployed API needs SigV4-signed requests: check --sign, --profile and --region, "
                "and that your credentials may call execute-api:Invoke)"
            )
        return lines
