"""The local runtime: the control plane on an embedded AWS emulator (moto), no AWS account needed.

- ``aws``: the embedded moto server and the environment that points boto3 at it.
- ``seed``: a ready account (VPC, subnets in two AZs, an issued certificate).
- ``events``: HTTP requests as API Gateway HTTP API (payload 2.0) events.
- ``http_adapter``: the local HTTP front door that invokes the same handlers.
- ``main`` (``make local``) and ``demo`` (``make demo``).
"""
