"""The policy table (shareflow/policy.py): Manila's personas, its rule names,
and the guard every API responder is defined under."""

from __future__ import annotations

import inspect
import re

import pytest

from shareflow import policy
from shareflow.api.resources import base
from shareflow.exceptions import Forbidden
from shareflow.services.context import Caller

ADMIN = Caller(project_id="ops", user_id="root", roles=("admin",))
MEMBER = Caller(project_id="p1", user_id="mia", roles=("member",))
READER = Caller(project_id="p1", user_id="rita", roles=("reader",))
OTHER_MEMBER = Caller(project_id="p2", user_id="otto", roles=("member",))
NO_ROLE = Caller(project_id="p1", user_id="nobody", roles=())


def test_every_rule_resolves_to_a_check():
    assert len(policy.RULES) > 100
    for name, check in policy.RULES.items():
        assert policy.check_of(name) is check
        assert isinstance(check, policy.Check)
        assert ":" in name, name


def test_an_unknown_rule_is_an_error_not_a_refusal_or_a_pass():
    with pytest.raises(policy.UnknownRule, match="share:frobnicate"):
        policy.enforce(ADMIN, "share:frobnicate")
    with pytest.raises(policy.UnknownRule):
        policy.authorize(ADMIN, "")


@pytest.mark.parametrize("rule, check", [
    ("share:create", "(rule:context_is_admin) or (rule:project-member)"),
    ("share:get", "(rule:context_is_admin) or (rule:project-reader)"),
    ("share:force_delete", "rule:context_is_admin"),
    ("share_type:create", "rule:context_is_admin"),
    ("share_type:index", "(rule:context_is_admin) or (rule:project-reader)"),
    ("share_instance:index", "rule:context_is_admin"),
    ("service:index", "rule:context_is_admin"),
    ("scheduler_stats:pools:index", "rule:context_is_admin"),
    ("security_service:create", "(rule:context_is_admin) or (rule:project-member)"),
    ("message:delete", "(rule:context_is_admin) or (rule:project-member)"),
    ("quota_set:show", "(rule:context_is_admin) or (rule:project-reader)"),
    ("limits:index", "@"),
])
def test_rules_carry_manilas_default_check_strings(rule, check):
    assert str(policy.check_of(rule)) == check


# --- who may what, on which project -------------------------------------------------

#: persona -> (admin, member own, reader own, member of another project, no role)
MATRIX = {
    "share:force_delete": (True, False, False, False, False),       # ADMIN
    "share:create": (True, True, False, False, False),              # ADMIN_OR_PROJECT_MEMBER
    "share:get": (True, True, True, False, False),                  # ADMIN_OR_PROJECT_READER
    "limits:index": (True, True, True, True, True),                 # anyone authenticated
}


@pytest.mark.parametrize("rule", MATRIX)
def test_matrix_on_a_resource_of_project_p1(rule):
    target = {"project_id": "p1"}
    got = tuple(policy.authorize(c, rule, target) for c in (ADMIN, MEMBER, READER, OTHER_MEMBER, NO_ROLE))
    assert got == MATRIX[rule]


def test_without_a_target_the_callers_own_project_is_the_target():
    # Creating or listing: Manila's check_policy(context, ..., target=None).
    assert policy.authorize(OTHER_MEMBER, "share:create")
    assert policy.authorize(READER, "share:get_all") and not policy.authorize(READER, "share:create")


class Row:
    project_id = "p1"


def test_targets_are_project_ids_mappings_or_rows():
    for target in ("p1", {"project_id": "p1"}, Row()):
        assert policy.authorize(MEMBER, "share:update", target)
        assert not policy.authorize(OTHER_MEMBER, "share:update", target)
        assert policy.authorize(ADMIN, "share:update", target)


def test_roles_are_case_insensitive_and_imply_as_keystones_defaults():
    assert Caller(project_id="p1", roles=("Admin",)).is_admin
    upper_reader = Caller(project_id="p1", roles=("READER",))
    assert policy.authorize(upper_reader, "share:get") and not upper_reader.can_write
    # admin implies member implies reader, as a Keystone token lists them.
    assert set(ADMIN.roles) == {"admin", "member", "reader"}
    assert set(MEMBER.roles) == {"member", "reader"} and MEMBER.can_write
    assert READER.roles == ("reader",)
    # Manila does not read the legacy _member_ role as member.
    legacy = Caller(project_id="p1", roles=("_member_",))
    assert not policy.authorize(legacy, "share:get") and not legacy.can_write


def test_caller_defaults_keep_the_old_is_admin_meaning():
    assert Caller(project_id="x").roles == ("member", "reader")
    assert Caller(project_id="x", is_admin=True).is_admin
    # Given roles win: they are what the token said.
    assert not Caller(project_id="x", is_admin=True, roles=("reader",)).is_admin
    assert NO_ROLE.roles == () and not NO_ROLE.is_admin and not NO_ROLE.can_write
    assert ADMIN.scope is None and READER.scope == "p1"


def test_enforce_raises_forbidden_with_manilas_message():
    with pytest.raises(Forbidden) as refused:
        policy.enforce(READER, "share:delete", {"project_id": "p1"})
    assert refused.value.http_status == 403
    assert refused.value.user_message == "Policy doesn't allow share:delete to be performed."
    with pytest.raises(Forbidden) as custom:
        policy.enforce(OTHER_MEMBER, "quota_set:show", "p1", message="Access was denied to this resource.")
    assert custom.value.user_message == "Access was denied to this resource."
    policy.enforce(MEMBER, "share:delete", {"project_id": "p1"})  # no exception


# --- the guard on API responders ----------------------------------------------------


def test_a_responder_without_a_rule_cannot_be_defined():
    with pytest.raises(base.MissingPolicy, match="Sneaky.on_delete"):
        class Sneaky(base.Resource):  # noqa: F841
            POLICY = {"on_get": "share:get"}

            def on_get(self, req, resp): ...

            def on_delete(self, req, resp): ...


def test_a_responder_naming_an_unknown_rule_cannot_be_defined():
    with pytest.raises(policy.UnknownRule):
        class Typo(base.Resource):  # noqa: F841
            POLICY = {"on_post": "share:craete"}

            def on_post(self, req, resp): ...


def test_every_resource_module_names_known_rules_for_every_responder():
    import shareflow.api.app  # noqa: F401 (imports every resource)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    seen = 0
    for cls in subclasses(base.Resource):
        if not cls.__module__.startswith("shareflow."):
            continue
        for name, member in inspect.getmembers(cls, callable):
            if name.startswith("on_"):
                rule = member.__policy_rule__
                assert rule == base.PER_ACTION or rule in policy.RULES, (cls, name)
                seen += 1
    assert seen > 80


READ_ACTION = re.compile(r"^(get|get_all|index|show|detail|default|access_get_all"
                         r"|get_share_metadata|get_snapshot|get_all_snapshots)$")


def test_only_reads_are_open_to_readers():
    """What a reader may do is named as a read (Manila's get/index/show...);
    a rule naming a change is never reader-level, whatever the table says."""
    for name, check in policy.RULES.items():
        action = name.rsplit(":", 1)[1]
        if check in (policy.ADMIN_OR_PROJECT_READER, policy.ANYONE):
            assert READ_ACTION.match(action), name
        else:
            assert check in (policy.ADMIN, policy.ADMIN_OR_PROJECT_MEMBER), name
