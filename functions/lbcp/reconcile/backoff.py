"""Per-load-balancer backoff: how long a load balancer that keeps failing waits before it is tried again (pure).

The reconciler is level-triggered: every tick plans every load balancer from
what is true now. That heals everything that can heal, but a load balancer
whose attempts keep failing (no capacity for its instance type, a quota, a
spec the planner chokes on) would be retried every minute forever, writing
the same Warning events each time and spending the tick's time and AWS calls
on work that does not succeed. So each load balancer carries a *failure
streak*, and a load balancer in a streak is left alone until its
``not_before``.

The streak
----------
A tick counts as failed for a load balancer when planning or acting for it
raised, or any of its jobs failed. Each failed tick extends the streak by one
(``failures``); a tick with no failure ends it (the stored streak is deleted).
A streak belongs to one generation of the spec: a new spec is a new question,
so a streak of an older generation does not hold the load balancer back and
its next failure starts a new streak at 1.

The delay
---------
After the n-th consecutive failure the nominal delay is::

    nominal(n) = min(base * 2**(n - 1), cap)

the per-item exponential limiter of controller-runtime
(``ItemExponentialFailureRateLimiter``), whose defaults are 5 ms and 1000 s.
The cap is kept (1000 s, about 17 minutes: a fleet whose cause of failure goes
away heals within that). The base is not: controller-runtime's work queue
retries within milliseconds, but this reconciler runs on a one-minute
schedule, so every delay shorter than a tick is one tick. With 5 ms the first
13 doublings would all mean "the next tick" and the delay would first be felt
after 14 failures; the base here is one tick period (60 s), so the second
failure already waits two minutes. At the defaults::

    n         1    2    3    4     5     6..
    nominal   60s  2m   4m   8m    16m   16m40s (cap)

Jitter
------
Load balancers that fail together (an Availability Zone out of capacity, a
throttled API) must not all retry in the same tick again. The delay is
"equal jitter" (the AWS Architecture Blog's name)::

    delay(n) = nominal(n) / 2 + uniform(0, nominal(n) / 2)

Half of the delay is kept, so the delays still grow (each is at least half its
nominal value, which is at least the previous nominal value), and the other
half is spread uniformly, so failures that happened in one tick spread over the
following ticks. It also means the first retry (30..60 s) is always due at
the next one-minute tick: one failure costs nothing. Full jitter (uniform over
the whole delay) would spread better but lets a delay fall to nearly zero,
which on a one-minute schedule means retrying at the old pace.

What bypasses it
----------------
A load balancer in backoff is still reconciled at once when something new
happened to it: its spec changed (the stream; or any tick that sees a
generation other than the streak's), it was asked something else new (deletion,
a rollout pause/resume/abort, a desired capacity from the scaler: one job that
keeps failing must not hold back a scale-out), or one of its instances changed
state (EC2 events: a lost LBVM must leave the entry within seconds, failing or
not). The caller says which load balancers a trigger concerns (``urgent``).

Telling
-------
Every failed attempt is a Warning event of its own (the failed jobs'), but the
streak's own event is written only when the streak changes in a way worth
telling: at its first failure, each time the count doubles (1, 2, 4, 8, ...),
and when it is dead-lettered. A load balancer failing for a day at the cap
writes about 7 of them, not 86.

Dead letters
------------
After ``dead_letter_after`` consecutive failures (default 8: the 7 waits
before the 8th attempt add up to 64 minutes nominal, 32 to 71 with jitter and
the one-minute schedule) the streak is sent to a dead-letter queue once, for a
person to look at. Retrying goes on at the cap:
the fleet heals itself when the cause goes away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class BackoffSettings:
    # The nominal delay after the first failure: one tick of the schedule (see the module docstring).
    base: timedelta = timedelta(seconds=60)
    # The longest nominal delay: controller-runtime's per-item cap.
    cap: timedelta = timedelta(seconds=1000)
    # Consecutive failures after which the streak is sent to the dead-letter queue (once per streak).
    dead_letter_after: int = 8

    def __post_init__(self) -> None:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.dead_letter_after < 1:
            raise ValueError("dead_letter_after must be at least 1")


@dataclass(frozen=True)
class RetryStreak:
    """The consecutive failed attempts of one load balancer at one generation of its spec."""

    load_balancer_id: str
    generation: int
    failures: int
    first_failed_at: datetime
    last_failed_at: datetime
    last_error: str
    not_before: datetime
    # When the streak was sent to the dead-letter queue (None: not yet).
    dead_lettered_at: datetime | None = None

    @property
    def backoff(self) -> timedelta:
        """How long the last failure made the load balancer wait."""
        return self.not_before - self.last_failed_at


def nominal_delay(failures: int, settings: BackoffSettings) -> timedelta:
    """min(base * 2^(n-1), cap), without overflowing for long streaks."""
    if failures < 1:
        return timedelta(0)
    # 2^(n-1) passes any cap long before it gets large: stop doubling once there.
    doublings = min(failures - 1, 63)
    seconds = settings.base.total_seconds() * (2**doublings)
    return timedelta(seconds=seconds) if seconds < settings.cap.total_seconds() else settings.cap


def jittered_delay(failures: int, settings: BackoffSettings, rng: random.Random) -> timedelta:
    """Equal jitter: half the nominal delay, plus a uniform share of the other half."""
    half = nominal_delay(failures, settings) / 2
    return half + half * rng.random()


def record_failure(
    previous: RetryStreak | None,
    *,
    load_balancer_id: str,
    generation: int,
    error: str,
    now: datetime,
    settings: BackoffSettings,
    rng: random.Random,
) -> RetryStreak:
    """The streak after one more failed attempt; a streak of another generation is not continued."""
    if previous is None or previous.generation != generation:
        failures, first, dead_lettered = 1, now, None
    else:
        failures, first, dead_lettered = previous.failures + 1, previous.first_failed_at, previous.dead_lettered_at
    return RetryStreak(
        load_balancer_id=load_balancer_id,
        generation=generation,
        failures=failures,
        first_failed_at=first,
        last_failed_at=now,
        last_error=error,
        not_before=now + jittered_delay(failures, settings, rng),
        dead_lettered_at=dead_lettered,
    )


def held_back(streak: RetryStreak | None, *, generation: int, now: datetime, urgent: bool) -> bool:
    """Whether this tick leaves the load balancer alone: it is in backoff and nothing new happened to it."""
    if streak is None or urgent or streak.generation != generation:
        return False
    return now < streak.not_before


def dead_letter_due(streak: RetryStreak, settings: BackoffSettings) -> bool:
    """Once per streak, from its ``dead_letter_after``-th failure on (a send that failed is tried again)."""
    return streak.failures >= settings.dead_letter_after and streak.dead_lettered_at is None


def dead_lettered(streak: RetryStreak, now: datetime) -> RetryStreak:
    return replace(streak, dead_lettered_at=now)


def worth_telling(streak: RetryStreak) -> bool:
    """The first failure and each doubling of the count (1, 2, 4, 8, ...): logarithmically many events."""
    return streak.failures & (streak.failures - 1) == 0


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(delay: timedelta) -> str:
    seconds = round(delay.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min" if rest == 0 else f"{minutes} min {rest} s"


def describe(streak: RetryStreak) -> str:
    """What the streak's event says, with the numbers behind it."""
    times = "once" if streak.failures == 1 else f"{streak.failures} times in a row"
    return (
        f"reconcile failed {times} since {_clock(streak.first_failed_at)} ({streak.last_error}); "
        f"next attempt at {_clock(streak.not_before)} (backoff {_duration(streak.backoff)})"
    )
