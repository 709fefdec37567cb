"""TaskFlow tasks: one reversible side effect each.

Every task takes ``runtime`` (injected by the conductor, see
``shareflow.engine.runtime``) and small JSON values from the flow store
(``job_id``, ``backend``, ``share_id``, ...). ``execute`` and ``revert`` are
idempotent: a conductor may die at any instruction and the next one re-runs
the atom that was RUNNING or REVERTING. Each docstring ends with the task's
reversion strategy.
"""
