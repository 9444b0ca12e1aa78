"""The policy simulator: replay a load trace through a fleet model and a policy (pure)."""

from lbcp.scaling.sim.fleet import FleetModel, SimResult, count_flaps, simulate
from lbcp.scaling.sim.foresight import ForesightResult, foresight
from lbcp.scaling.sim.trace import Trace, TraceError, load_trace, parse_trace

__all__ = [
    "FleetModel",
    "ForesightResult",
    "SimResult",
    "Trace",
    "TraceError",
    "count_flaps",
    "foresight",
    "load_trace",
    "parse_trace",
    "simulate",
]
