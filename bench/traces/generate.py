"""Regenerate the shipped load traces (deterministic: fixed seeds, so the CSVs never drift).

    .venv/bin/python bench/traces/generate.py

Each trace is ``t,load`` (seconds, requests per second), sized for LBVMs that
serve 1000 requests per second each and a fleet of 2 to 40.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOUR = 3600


def _write(name: str, samples: Iterable[tuple[int, float]]) -> None:
    lines = ["t,load", *(f"{t},{max(0.0, load):.1f}" for t, load in samples)]
    (HERE / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sampled(duration: int, step: int, load: Callable[[int], float]) -> list[tuple[int, float]]:
    return [(t, load(t)) for t in range(0, duration + 1, step)]


def step_spike() -> list[tuple[int, float]]:
    # 1500 rps, then 6000 for 45 minutes from t=30 min, then back.
    return _sampled(2 * HOUR, 60, lambda t: 6000.0 if 30 * 60 <= t < 75 * 60 else 1500.0)


def ramp() -> list[tuple[int, float]]:
    # 1000 -> 12000 rps over two hours, then an hour at the top.
    return _sampled(3 * HOUR, 60, lambda t: 1000 + 11000 * min(1.0, t / (2 * HOUR)))


def diurnal() -> list[tuple[int, float]]:
    # A day: night trough 1500 rps, afternoon peak 11500, a small lunchtime dip; mild noise.
    rng = random.Random(3)

    def load(t: int) -> float:
        hour = t / HOUR
        day = 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)
        lunch = -0.06 * math.exp(-(((hour - 12.5) / 0.6) ** 2))
        return (1500 + 10000 * max(0.0, day + lunch)) * (1 + rng.gauss(0, 0.02))

    return _sampled(24 * HOUR, 60, load)


def flash_crowd() -> list[tuple[int, float]]:
    # 2000 rps; at 40 min a crowd arrives within 2 minutes (peak 15000) and thins out over ~30 minutes.
    rng = random.Random(4)

    def load(t: int) -> float:
        base = 2000.0
        start = 40 * 60
        if t < start:
            extra = 0.0
        elif t < start + 120:
            extra = 13000 * (t - start) / 120
        else:
            extra = 13000 * math.exp(-(t - start - 120) / (12 * 60))
        return (base + extra) * (1 + rng.gauss(0, 0.03))

    return _sampled(2 * HOUR, 10, load)


def noisy_flat() -> list[tuple[int, float]]:
    # Half an hour at 2000 rps, then 4000 rps with noise for two and a half hours:
    # 80% CPU on 5 LBVMs, the seed's scale-out threshold, where a policy without
    # hysteresis flaps. The noise is 5% per minute plus 3% jitter per 10 seconds.
    rng = random.Random(5)
    minute_noise = [rng.gauss(0, 0.05) for _ in range(3 * 60 + 1)]

    def load(t: int) -> float:
        level = 2000.0 if t < 30 * 60 else 4000.0
        return level * (1 + minute_noise[t // 60] + rng.gauss(0, 0.03))

    return _sampled(3 * HOUR, 10, load)


def slow_decline() -> list[tuple[int, float]]:
    # An evening: 10000 rps declining to 1500 over four hours.
    rng = random.Random(6)
    return _sampled(4 * HOUR, 60, lambda t: (10000 - 8500 * t / (4 * HOUR)) * (1 + rng.gauss(0, 0.02)))


TRACES: dict[str, Callable[[], list[tuple[int, float]]]] = {
    "step-spike": step_spike,
    "ramp": ramp,
    "diurnal": diurnal,
    "flash-crowd": flash_crowd,
    "noisy-flat": noisy_flat,
    "slow-decline": slow_decline,
}


def main() -> None:
    for name, make in TRACES.items():
        _write(name, make())


if __name__ == "__main__":
    main()
