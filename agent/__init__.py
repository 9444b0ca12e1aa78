"""The LBVM agent: turns a load balancer's spec into a running proxy and WAF, and reports back.

The core (``agent.loop``) runs over two interfaces, so that the same code drives
a real instance and the local runtime's simulated fleet:

- a control-plane client (``agent.control``): fetch the config, send heartbeats;
- a data plane (``agent.dataplane``): apply a config, reload, count connections,
  drain, stop; with HAProxy and NGINX implementations and a simulated one.
"""

__version__ = "0.1.0"
