"""The LBVM lifecycle: what the state machines in ``statemachines/`` call and are called with.

- ``protocol``: execution names, the tasks function's actions, callback outputs.
- ``tasks``: the actions of the lifecycle tasks function.
- ``callbacks``: completing the state machines' waits (heartbeat handler, reconciler).
- ``executions``: starting a lifecycle execution (the reconciler's ``LifecyclePort``).
- ``messages``: the events written on each transition.

See ``docs/lifecycle.md`` for the machines, their states and the callback protocol.
"""
