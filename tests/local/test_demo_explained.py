"""The demo's closing explanation (`lbctl describe` and `lbctl why`), on a document the real planner built (pure).

The demo itself runs in tests/local/test_demo.py (end to end, long); this checks what it prints at its step 9.
"""

from __future__ import annotations

from datetime import timedelta

from lbcp_local.demo import explained
from tests.cli.test_why import document, reconciled, scaled
from tests.fleet.test_planner import NOW, SUBNET_A, SUBNET_B, lbvm, record


def test_the_demo_prints_describe_then_why_capacity() -> None:
    two = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    rec = reconciled(record(desired=2, capacity={"min": 1, "max": 3}, scaling={"policy": "vote"}), two)
    rec = scaled(rec, NOW)
    later = NOW + timedelta(minutes=2)
    rec = reconciled(rec, [*two, lbvm(3)], later)
    text = explained(document(rec, later), [], later)
    lines = text.splitlines()
    assert lines[0] == "$ lbctl describe web"
    assert "Conditions:" in lines and "Scaling:" in lines
    why = lines.index("$ lbctl why web capacity")
    assert lines[why - 1] == "" and why > lines.index("Conditions:")
    assert lines[why + 1].startswith("desired capacity is 3 because at 12:00 the scaler scaled out 2 -> 3: cpu 85%")
