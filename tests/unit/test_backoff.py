"""The backoff's arithmetic (``lbcp.reconcile.backoff``): delays, jitter, the streak, what is told and when."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from lbcp.reconcile.backoff import (
    BackoffSettings,
    RetryStreak,
    dead_letter_due,
    dead_lettered,
    describe,
    held_back,
    jittered_delay,
    nominal_delay,
    record_failure,
    worth_telling,
)

NOW = datetime(2026, 12, 7, 12, 1, 0, tzinfo=UTC)
DEFAULTS = BackoffSettings()


def fail(previous: RetryStreak | None, now: datetime = NOW, generation: int = 1, seed: int = 1) -> RetryStreak:
    return record_failure(
        previous,
        load_balancer_id="lb-1",
        generation=generation,
        error="LaunchFailed: ClientError: InsufficientInstanceCapacity",
        now=now,
        settings=DEFAULTS,
        rng=random.Random(seed),
    )


def test_the_nominal_delay_doubles_from_one_tick_to_the_cap() -> None:
    seconds = [nominal_delay(n, DEFAULTS).total_seconds() for n in range(1, 9)]
    assert seconds == [60, 120, 240, 480, 960, 1000, 1000, 1000]
    assert nominal_delay(10_000, DEFAULTS) == timedelta(seconds=1000)  # no overflow for endless streaks
    assert nominal_delay(0, DEFAULTS) == timedelta(0)
    controller_runtime = BackoffSettings(base=timedelta(milliseconds=5), cap=timedelta(seconds=1000))
    assert nominal_delay(1, controller_runtime) == timedelta(milliseconds=5)
    assert nominal_delay(18, controller_runtime) == timedelta(seconds=655.36)
    assert nominal_delay(19, controller_runtime) == timedelta(seconds=1000)


def test_equal_jitter_keeps_half_and_spreads_the_other_half() -> None:
    rng = random.Random(3)
    for failures in range(1, 12):
        nominal = nominal_delay(failures, DEFAULTS)
        delays = [jittered_delay(failures, DEFAULTS, rng) for _ in range(300)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        # Spread over the upper half, not bunched: both quarters of it are used.
        assert min(delays) < nominal * 0.6 and max(delays) > nominal * 0.9


def test_a_streak_counts_consecutive_failures_of_one_generation() -> None:
    first = fail(None)
    assert (first.failures, first.first_failed_at, first.last_failed_at) == (1, NOW, NOW)
    assert timedelta(seconds=30) <= first.backoff <= timedelta(seconds=60)  # due at the next one-minute tick
    later = NOW + timedelta(minutes=1)
    second = fail(first, later)
    assert (second.failures, second.first_failed_at, second.last_failed_at) == (2, NOW, later)
    assert timedelta(seconds=60) <= second.backoff <= timedelta(seconds=120)
    # A new generation is a new question: its first failure starts a streak of its own.
    renewed = fail(dead_lettered(second, later), later, generation=2)
    assert (renewed.failures, renewed.generation, renewed.first_failed_at, renewed.dead_lettered_at) == (
        1,
        2,
        later,
        None,
    )


def test_held_back_until_not_before_unless_urgent_or_respecified() -> None:
    streak = fail(fail(fail(None)))  # 3 failures: 2 to 4 minutes
    before = streak.not_before - timedelta(seconds=1)
    assert held_back(streak, generation=1, now=before, urgent=False)
    assert not held_back(streak, generation=1, now=streak.not_before, urgent=False)
    assert not held_back(streak, generation=1, now=before, urgent=True)
    assert not held_back(streak, generation=2, now=before, urgent=False)
    assert not held_back(None, generation=1, now=before, urgent=False)


def test_dead_lettered_once_per_streak_from_the_threshold_on() -> None:
    streak = None
    due = []
    for n in range(1, 12):
        streak = fail(streak, NOW + timedelta(hours=n))
        if dead_letter_due(streak, DEFAULTS):
            due.append(n)
            if n >= 9:  # the send at 8 failed; it is tried again at 9, and then it is sent
                streak = dead_lettered(streak, NOW + timedelta(hours=n))
    assert due == [8, 9]
    with pytest.raises(ValueError):
        BackoffSettings(dead_letter_after=0)
    with pytest.raises(ValueError):
        BackoffSettings(base=timedelta(minutes=20), cap=timedelta(minutes=10))


def test_told_at_the_first_failure_and_each_doubling() -> None:
    streak = None
    told = []
    for n in range(1, 70):
        streak = fail(streak)
        if worth_telling(streak):
            told.append(n)
    assert told == [1, 2, 4, 8, 16, 32, 64]


def test_the_message_says_how_often_since_when_why_and_until_when() -> None:
    streak = RetryStreak(
        load_balancer_id="lb-1",
        generation=3,
        failures=3,
        first_failed_at=NOW,
        last_failed_at=NOW + timedelta(minutes=4),
        last_error="LaunchFailed: ClientError: InsufficientInstanceCapacity",
        not_before=NOW + timedelta(minutes=8),
    )
    assert describe(streak) == (
        "reconcile failed 3 times in a row since 2026-12-07T12:01:00Z "
        "(LaunchFailed: ClientError: InsufficientInstanceCapacity); "
        "next attempt at 2026-12-07T12:09:00Z (backoff 4 min)"
    )
    once = fail(None)
    assert describe(once).startswith("reconcile failed once since 2026-12-07T12:01:00Z (")
    assert describe(once).endswith(" s)") and "(backoff " in describe(once)
