"""The CDK app of the lbcp control plane (see ``stacks.application``).

One concept, one place:

- ``control_plane``: the ``Lbcp`` stack, wiring the parts below together.
- ``functions``: ``FunctionContext`` (what every function shares, including
  the base environment) and ``LbcpFunction``, which builds every function.
- ``api``, ``fleet``, ``reconciler``, ``scaler``, ``agent_artifact``: the parts.
- ``storage``: the table and the named action lists granted on it.
- ``arns``, ``owner_tags``: every ARN pattern and owner-tag condition granted on.
- ``entry_permissions``: what the reconciler may do to the entries.
- ``schedule``: the every-minute rule; ``dependencies``: ``DependsOn`` on a
  role's policies, not the role.
- ``nag``: cdk-nag and every acknowledged finding; ``config``: the context
  settings; ``bundling``: the dependency layer without Docker.
"""
