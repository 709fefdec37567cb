"""A job's logbook, written in the transaction that records the job.

A conductor needs two things persisted before it can run a job: the job's
logbook with a flow detail naming the flow factory (TaskFlow's
``engines.save_factory_details``), and the job's store as the complete
store atom detail (``shareflow.engine.loading``). Both are known when the
job is recorded, so both are written there, with the job's row and the
resource's status change: no transaction of their own before the post (the
API's create answered one write later, and the placing conductor handed the
create job over one write later), and none in the conductor that loads the
job (``save_store`` finds the store whole and writes nothing).

Nothing runs a job before it is posted, and it is posted only after this
transaction commits, so the rule "logbook, then factory details, then post"
(DESIGN.md) holds as before. A job recorded by an older version, which
saved the logbook at its post, has none until it is posted
(``JobPoster.post`` saves one then).
"""

from __future__ import annotations

import sqlalchemy as sa
from oslo_utils import uuidutils
from taskflow import engines
from taskflow import states as tf_states
from taskflow.persistence import models as tf_models
from taskflow.persistence.backends.sqlalchemy import tables as tf_tables

from shareflow.engine.loading import STORE_ATOM


def new_book(*, operation: str, resource_id: str, logbook_id: str, flow_detail_id: str, factory,
             factory_kwargs: dict, store: dict) -> tf_models.LogBook:
    """The logbook a job starts with: one flow detail naming its factory,
    holding ``store`` (what the job's posting carries as its store) as the
    store atom detail TaskFlow's storage expects (SUCCESS, results a dict)."""
    book = tf_models.LogBook(f"{operation}-{resource_id}", uuid=logbook_id)
    flow_detail = tf_models.FlowDetail(operation, uuid=flow_detail_id)
    book.add(flow_detail)
    engines.save_factory_details(flow_detail, factory, [], factory_kwargs)
    atom = tf_models.TaskDetail(STORE_ATOM, uuidutils.generate_uuid())
    atom.results = dict(store)
    atom.state = tf_states.SUCCESS
    flow_detail.add(atom)
    return book


#: TaskFlow's persistence tables, as its SQLAlchemy backend declares them.
_TABLES = tf_tables.fetch(sa.MetaData())
_INSERT_BOOK = sa.insert(_TABLES.logbooks)
_INSERT_FLOW = sa.insert(_TABLES.flowdetails)
_INSERT_ATOM = sa.insert(_TABLES.atomdetails)


def insert(connection: sa.Connection, book: tf_models.LogBook) -> None:
    """Insert ``book``, its flow details and their atom details, as
    TaskFlow's ``save_logbook`` does for a new book, on ``connection`` (the
    caller's transaction): plain inserts, nothing read first - the book is
    new (its uuid was made with the job's record)."""
    connection.execute(_INSERT_BOOK, book.to_dict())
    for flow_detail in book:
        connection.execute(_INSERT_FLOW, {**flow_detail.to_dict(), "parent_uuid": book.uuid})
        for atom in flow_detail:
            connection.execute(_INSERT_ATOM, {**atom.to_dict(), "parent_uuid": flow_detail.uuid,
                                               "atom_type": tf_models.atom_detail_type(atom)})

