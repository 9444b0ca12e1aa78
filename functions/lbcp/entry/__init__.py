"""The entry: how clients reach a load balancer's LBVMs (an NLB pool, or DNS records).

``EntryAdapter`` (in ``adapter``) is the one interface; ``pool``, ``dns`` and
``network`` hold the ELBv2, Route53 and EC2 calls, ``names`` the deterministic
names and owner tags.
"""

from lbcp.entry.adapter import EntryAdapter, EntryNotConfigured, EntryNotReady, Registration

__all__ = ["EntryAdapter", "EntryNotConfigured", "EntryNotReady", "Registration"]
