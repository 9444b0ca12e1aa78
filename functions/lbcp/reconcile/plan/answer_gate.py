"""The 5xx gate of a bake (pure): are the canaries answering worse than the LBVMs they replace?

Agents report, per boot, how many HTTP requests their proxy answered and how
many with a 5xx (``Lbvm.http_requests``/``http_server_errors``, stored with the
heartbeats that are stored anyway, so at most 30 s old). When a bake begins the
rollout keeps every LBVM's counts (``AnswerCount``); during the bake the gate
compares what each group answered since then, over the same window, so an
incident before the rollout or a backend that fails for everyone moves both
sides alike.

It fails only on evidence: each side needs ``MIN_REQUESTS`` answers in the
window, and the canaries' 5xx rate must be both at least ``ABSOLUTE_MARGIN``
above the others' and more than ``RELATIVE_FACTOR`` times it (1% of 5xx where
the others have 0.1% fails; 0.3% against 0.2% does not). Without enough traffic,
or where a proxy cannot count (NGINX), the gate says nothing and the other
gates decide. An LBVM whose agent restarted in the window (another boot) is
left out: its counts start again from zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import AnswerCount

MIN_REQUESTS: Final = 100
ABSOLUTE_MARGIN: Final = 0.01
RELATIVE_FACTOR: Final = 2.0


def answer_counts(lbvms: Iterable[Lbvm]) -> dict[str, AnswerCount]:
    """What to keep when a bake begins: the counts of every LBVM that reports them."""
    return {
        lbvm.lbvm_id: AnswerCount(
            boot_id=lbvm.boot_id, requests=lbvm.http_requests, server_errors=lbvm.http_server_errors or 0
        )
        for lbvm in lbvms
        if lbvm.boot_id is not None and lbvm.http_requests is not None
    }


@dataclass(frozen=True)
class Window:
    requests: int = 0
    server_errors: int = 0
    lbvms: int = 0

    @property
    def rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    def text(self) -> str:
        return f"{self.server_errors} of {self.requests} answers 5xx ({self.rate:.1%}) on {self.lbvms} LBVM(s)"


def window(lbvms: Iterable[Lbvm], since: Mapping[str, AnswerCount]) -> Window:
    """What these LBVMs answered since ``since`` (same boot only)."""
    requests = errors = count = 0
    for lbvm in lbvms:
        start = since.get(lbvm.lbvm_id)
        if start is None or lbvm.boot_id != start.boot_id or lbvm.http_requests is None:
            continue
        requests += max(0, lbvm.http_requests - start.requests)
        errors += max(0, (lbvm.http_server_errors or 0) - start.server_errors)
        count += 1
    return Window(requests, errors, count)


def worse_answers(canaries: Iterable[Lbvm], others: Iterable[Lbvm], since: Mapping[str, AnswerCount]) -> str | None:
    """Why the canaries fail the 5xx gate, in words with the numbers; None when they do not (or cannot be judged)."""
    new, old = window(canaries, since), window(others, since)
    if new.requests < MIN_REQUESTS or old.requests < MIN_REQUESTS:
        return None
    if new.rate >= old.rate + ABSOLUTE_MARGIN and new.rate > old.rate * RELATIVE_FACTOR:
        return f"the canary answered worse than the rest during the bake: {new.text()} against {old.text()}"
    return None
