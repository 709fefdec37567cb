"""The operation registry's working half: each declared operation's flow
factory, and the job that runs it.

``shareflow.domain.states.OPERATIONS`` declares every operation as data (pure,
no imports of flows); here its ``flow`` import path becomes the factory, a
request's inputs become a :class:`~shareflow.engine.posting.JobSpec` checked
against the keys the flow needs, and a request whose job could not be posted
gets its undo (``shareflow.db.resources.give_back``). Services start every
job through :func:`job_spec` and :func:`undo`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from shareflow.db import resources
from shareflow.domain import states
from shareflow.engine.posting import JobSpec, import_factory


def factory(name: str) -> Callable:
    """The flow factory of operation ``name``."""
    return import_factory(states.operation(name).flow)


def job_spec(name: str, *, backend: str, resource_id: str, store: dict, caller=None,
             project_id: str | None = None, factory_kwargs: dict | None = None) -> JobSpec:
    """The job of operation ``name`` on ``resource_id``. ``caller`` (a
    :class:`~shareflow.services.context.Caller`) is who asked; ``project_id``
    overrides the project a failure's user message goes to (the resource
    owner's). Raises ValueError when the store misses a key the flow needs
    (a bug, not a bad request)."""
    op = states.operation(name)
    store = {**store, "resource_id": resource_id}
    missing = [k for k in op.store_keys if k not in store]
    if missing:
        raise ValueError(f"{name} job needs {missing} in its store")
    return JobSpec(
        operation=op.name, backend=backend, resource_type=op.resource_kind, resource_id=resource_id,
        factory=factory(name), factory_kwargs=factory_kwargs or {}, store=store,
        project_id=project_id if project_id is not None else getattr(caller, "project_id", None),
        request_id=getattr(caller, "request_id", None), user_id=getattr(caller, "user_id", None),
    )


def undo(name: str, resource_id: str, previous: str | None, *, clock: Callable[[], datetime],
         snapshot_id: str | None = None) -> Callable[[Session], None]:
    """What :meth:`JobPoster.post_or_undo` runs when the job could not be
    posted: the resource back as it was before the request."""
    op = states.operation(name)

    def run(session: Session) -> None:
        resources.give_back(session, op, resource_id, previous, now=clock(), snapshot_id=snapshot_id)

    return run
