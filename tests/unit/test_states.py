import pytest

from shareflow.domain import states
from shareflow.exceptions import InvalidTransition


def test_every_source_is_a_known_status():
    for kind, table in states.TRANSITIONS.items():
        known = set(table)
        for target, sources in table.items():
            assert sources <= known, (kind, target, sources - known)


@pytest.mark.parametrize(
    "src,dst",
    [
        (states.CREATING, states.AVAILABLE),
        (states.CREATING, states.ERROR),
        (states.AVAILABLE, states.DELETING),
        (states.ERROR, states.DELETING),
        (states.ERROR_DELETING, states.DELETING),
        (states.DELETING, states.ERROR_DELETING),
        (states.DELETING, states.DELETED),
    ],
)
def test_share_transitions_allowed(src, dst):
    states.check_transition(states.SHARE, src, dst)
    assert states.is_allowed(states.SHARE, src, dst)


@pytest.mark.parametrize(
    "src,dst",
    [
        (states.CREATING, states.DELETING),  # busy shares cannot be deleted
        (states.DELETING, states.AVAILABLE),
        (states.AVAILABLE, states.CREATING),
        (states.ERROR, states.AVAILABLE),
        (states.DELETED, states.DELETING),
    ],
)
def test_share_transitions_refused(src, dst):
    with pytest.raises(InvalidTransition):
        states.check_transition(states.SHARE, src, dst)


def test_rule_lifecycle():
    path = [states.QUEUED_TO_APPLY, states.APPLYING, states.ACTIVE, states.QUEUED_TO_DENY, states.DENYING, states.DELETED]
    for src, dst in zip(path, path[1:]):
        states.check_transition(states.ACCESS_RULE, src, dst)
    assert not states.is_allowed(states.ACCESS_RULE, states.ACTIVE, states.APPLYING)


def test_unknown_status_is_an_error():
    with pytest.raises(InvalidTransition):
        states.sources(states.SHARE, "bogus")


def test_operations_fail_into_allowed_statuses():
    for op in states.OPERATIONS.values():
        for working in op.working:
            assert states.is_allowed(op.resource_kind, working, op.failed), op
        assert op.action_id.isdigit() and len(op.action_id) == 3


def test_in_effect_rules_exclude_those_being_denied():
    assert states.QUEUED_TO_DENY not in states.RULES_IN_EFFECT
    assert states.DENYING not in states.RULES_IN_EFFECT
    assert states.ACTIVE in states.RULES_IN_EFFECT
