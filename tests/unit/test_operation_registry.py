"""The operation registry: each declared operation's facts agree with its flow."""

from __future__ import annotations

import pytest

from shareflow.domain import states
from shareflow.engine import operations
from shareflow.engine.posting import factory_path

#: What posting and the conductor add to every store.
ADDED = {"job_id", "backend", "runtime"}


@pytest.mark.parametrize("name", sorted(states.OPERATIONS))
def test_declared_store_keys_are_what_the_flow_needs(name):
    op = states.operation(name)
    flow = operations.factory(name)()
    provided = set()
    for atom, _ in flow.iter_nodes():
        provided |= set(atom.provides)
    required = set()
    for atom, _ in flow.iter_nodes():
        required |= set(atom.requires)
    missing = required - provided - ADDED - set(op.store_keys)
    # Optional inputs of one variant (a create from a snapshot needs its id).
    assert missing <= {"snapshot_id"}, (name, missing)
    assert flow.name == name


@pytest.mark.parametrize("name", sorted(states.OPERATIONS))
def test_factory_is_addressed_by_its_declared_path(name):
    op = states.operation(name)
    assert factory_path(operations.factory(name)) == op.flow


@pytest.mark.parametrize("name", sorted(states.OPERATIONS))
def test_statuses_of_each_operation_are_reachable(name):
    op = states.operation(name)
    assert op.start_status in op.working
    for working in op.working:
        assert states.is_allowed(op.resource_kind, working, op.failed), op
        assert states.is_allowed(op.resource_kind, working, op.failed_after_revert_failure), op
    if op.retryable:
        for failed in op.failure_statuses:
            assert states.is_allowed(op.resource_kind, failed, op.start_status), (op.name, failed)


def test_job_spec_refuses_a_store_missing_a_key():
    with pytest.raises(ValueError, match="size"):
        operations.job_spec("create_share", backend="b1", resource_id="s", store={"share_id": "s"})
    spec = operations.job_spec("extend_share", backend="b1", resource_id="s",
                               store={"share_id": "s", "new_size": 2, "old_size": 1})
    assert spec.store["resource_id"] == "s" and spec.resource_type == states.SHARE


def test_job_states_steering():
    assert states.JOB_STALLED not in states.TRANSITIONS[states.JOB]  # derived, never stored
    assert states.sources(states.JOB, states.JOB_CANCELLING) == {states.JOB_POSTED, states.JOB_RUNNING}
    assert states.sources(states.JOB, states.JOB_CANCELLED) == {states.JOB_CANCELLING}
    for resumable in states.JOB_RESUMABLE:
        assert states.is_allowed(states.JOB, resumable, states.JOB_POSTED)
    assert not states.is_allowed(states.JOB, states.JOB_REVERTED, states.JOB_POSTED)  # retried, not resumed
    assert not states.is_allowed(states.JOB, states.JOB_SUCCEEDED, states.JOB_CANCELLING)
    assert states.JOB_FAILED == states.JOB_REVERTED
