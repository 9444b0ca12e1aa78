"""The bake's 5xx gate: canaries against the rest, over the same window, only on evidence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lbcp.models.lbvm import Lbvm
from lbcp.reconcile.plan.answer_gate import answer_counts, window, worse_answers

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def lbvm(lbvm_id: str, requests: int | None, errors: int = 0, boot: str = "b1") -> Lbvm:
    return Lbvm(
        lbvm_id=lbvm_id, load_balancer_id="lb-1", subnet_id="subnet-a", state="Routable", state_since=NOW,
        version=1, launched_generation=1, launch_reason="test", created_at=NOW, boot_id=boot,
        http_requests=requests, http_server_errors=errors if requests is not None else None,
    )  # fmt: skip


# At the bake's start: each LBVM's counts.
START = answer_counts([lbvm("new-1", 0), lbvm("new-2", 5), lbvm("old-1", 1000, 3), lbvm("old-2", 400)])


@pytest.mark.parametrize(
    ("canaries", "others", "verdict"),
    [
        # 20 of 200 (10%) against 2 of 600 (0.3%): fails, with both sides' numbers.
        (
            [lbvm("new-1", 100, 10), lbvm("new-2", 105, 10)],
            [lbvm("old-1", 1300, 4), lbvm("old-2", 700, 1)],
            "the canary answered worse than the rest during the bake: 20 of 200 answers 5xx (10.0%) on 2 LBVM(s) "
            "against 2 of 600 answers 5xx (0.3%) on 2 LBVM(s)",
        ),
        # As bad as the rest (a backend failing for everyone): not the canary's fault.
        ([lbvm("new-1", 200, 20)], [lbvm("old-1", 3000, 203)], None),
        # Not enough answers on the canary to judge.
        ([lbvm("new-1", 99, 99)], [lbvm("old-1", 3000, 3)], None),
        # Within the margin: 0.5% against 0.3%.
        ([lbvm("new-1", 1000, 5)], [lbvm("old-1", 2000, 6)], None),
        # The canary's agent restarted (another boot): its counts are not comparable, so not judged.
        ([lbvm("new-1", 500, 400, boot="b2")], [lbvm("old-1", 3000, 3)], None),
        # NGINX counts nothing: not judged.
        ([lbvm("new-1", None)], [lbvm("old-1", None)], None),
    ],
)
def test_the_gate_fails_only_on_evidence(canaries: list[Lbvm], others: list[Lbvm], verdict: str | None) -> None:
    assert worse_answers(canaries, others, START) == verdict


def test_an_lbvm_without_counts_at_the_start_is_left_out() -> None:
    assert window([lbvm("late", 500, 50)], START).lbvms == 0
    both = window([lbvm("new-1", 50, 1), lbvm("old-1", 1100, 4)], START)
    assert (both.requests, both.server_errors, both.lbvms) == (150, 2, 2)
