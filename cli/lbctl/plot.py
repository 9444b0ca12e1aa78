"""``lbctl simulate --plot``: offered load, routable capacity and scaling decisions over time."""

from __future__ import annotations

from pathlib import Path

from lbcp.scaling.sim.fleet import SimResult


def draw(result: SimResult, capacity_rps: float, title: str, out: Path) -> None:
    """Write a PNG: peak load and routable capacity (requests/s) per minute, decisions marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    minutes = [record.minute for record in result.timeline]
    figure, (load_axes, fleet_axes) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    load_axes.plot(minutes, [r.load_peak for r in result.timeline], color="tab:red", lw=1, label="offered load (peak)")
    load_axes.plot(
        minutes,
        [r.load_mean for r in result.timeline],
        color="tab:orange",
        lw=1,
        alpha=0.6,
        label="offered load (mean)",
    )
    load_axes.step(
        minutes,
        [r.routable * capacity_rps for r in result.timeline],
        where="post",
        color="tab:blue",
        lw=1.5,
        label="routable capacity",
    )
    overloaded = [r.minute for r in result.timeline if r.overloaded]
    if overloaded:
        load_axes.scatter(
            overloaded,
            [0] * len(overloaded),
            marker="|",
            color="tab:red",
            s=60,
            label=f"overload minutes ({len(overloaded)})",
        )
    load_axes.set_ylabel("requests/s")
    load_axes.set_title(title)
    load_axes.legend(loc="upper left", fontsize=8)
    load_axes.grid(alpha=0.3)

    fleet_axes.step(minutes, [r.desired for r in result.timeline], where="post", color="tab:green", label="desired")
    fleet_axes.step(minutes, [r.routable for r in result.timeline], where="post", color="tab:blue", label="routable")
    for action in result.actions:
        marker, colour = ("^", "tab:green") if action.direction == "out" else ("v", "tab:purple")
        fleet_axes.scatter([action.time_seconds / 60], [action.desired], marker=marker, color=colour, zorder=3)
    fleet_axes.set_ylabel("LBVMs")
    fleet_axes.set_xlabel("minutes")
    fleet_axes.legend(loc="upper left", fontsize=8)
    fleet_axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
