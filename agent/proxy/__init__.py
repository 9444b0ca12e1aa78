"""Proxy drivers: HAProxy and NGINX processes as the data plane uses them."""
