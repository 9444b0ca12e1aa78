"""The consistency checker and garbage collection (DESIGN 2.7).

- ``inventory``: what the cloud holds (every resource carrying our product
  tag, listed once per run) and what the table holds, as plain data.
- ``findings``: the report's models (the ``GET /v1/consistency`` contract).
- ``check``: the pure comparison: cloud inventory + table records + specs +
  now -> findings.
- ``aws_inventory``: lists the cloud, paginated, in a number of calls that
  does not grow with the number of load balancers beyond pagination.
- ``store``: the last report and the append-only audit log in DynamoDB.
- ``sweep``: which findings may be deleted (pure), and the adapter that
  deletes them one by one after re-checking the live records.
- ``run``: one checker run: list the cloud, then read the table, check,
  remember since when each finding is seen, store, publish metrics, write
  events on the affected load balancers.
"""
