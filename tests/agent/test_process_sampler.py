"""An LBVM's load when LBVMs share a host: what its proxy's processes spend, not what the machine does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agent.metrics import ProcessSampler

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _write_stat(proc: Path, pid: int, *, cpu_ticks: int, pages: int) -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ... rss (field 24)
    fields = ["S", "1", *["0"] * 9, str(cpu_ticks - cpu_ticks // 2), str(cpu_ticks // 2), *["0"] * 8, str(pages)]
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "stat").write_text(f"{pid} (haproxy (worker)) {' '.join(fields)}\n")


def test_cpu_is_the_processes_time_over_wall_time_and_cores(tmp_path: Path) -> None:
    pids = {10, 11}
    now = [100.0]
    _write_stat(tmp_path, 10, cpu_ticks=5 * TICKS, pages=1000)  # spent before the sampler: not counted
    _write_stat(tmp_path, 11, cpu_ticks=0, pages=1000)
    sampler = ProcessSampler(lambda: pids, cores=2.0, memory_bytes=8000 * PAGE, root=tmp_path, monotonic=lambda: now[0])

    _write_stat(tmp_path, 10, cpu_ticks=6 * TICKS, pages=1000)  # 1 s of CPU
    _write_stat(tmp_path, 11, cpu_ticks=2 * TICKS, pages=1000)  # 2 s
    now[0] = 110.0
    assert sampler.cpu_percent() == 15.0  # 3 CPU-seconds in 10 s on 2 cores
    assert sampler.memory_percent() == 25.0  # 2000 of 8000 pages

    # A reload: worker 11 is gone, worker 12 started since the last call (all its time counts).
    pids.discard(11)
    pids.add(12)
    _write_stat(tmp_path, 12, cpu_ticks=4 * TICKS, pages=500)
    now[0] = 120.0
    assert sampler.cpu_percent() == 20.0  # 0 + 4 CPU-seconds in 10 s on 2 cores
    assert sampler.memory_percent() == 18.75


def test_processes_that_are_gone_or_never_were_count_nothing(tmp_path: Path) -> None:
    sampler = ProcessSampler(lambda: [424242], root=tmp_path, monotonic=iter([0.0, 5.0]).__next__)
    assert sampler.cpu_percent() == 0.0
    assert sampler.memory_percent() == 0.0


def test_a_busy_real_process_shows_as_load() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler = ProcessSampler(lambda: [busy.pid], cores=1.0)
        time.sleep(0.5)
        cpu = sampler.cpu_percent()
        # A spinning loop takes a whole core when it can; with every core busy with other tests it
        # still gets a fair share. An idle process (or one not counted) stays near 0.
        assert cpu > 20.0, cpu
        assert sampler.memory_percent() > 0.0
    finally:
        busy.kill()
        busy.wait()
