"""Flow factories: one module-level function per operation.

Conductors rebuild a job's flow by importing its factory by name from the
logbook, so a factory once released is never renamed or removed: keep the old
name as an alias, or jobs in flight when the service is upgraded are stranded.
The factories take only JSON keyword arguments; the ids a flow works on come
from the job's store (see ``shareflow.engine.posting``).
"""
