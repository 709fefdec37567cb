"""Client lists of exports, from the share's access rules."""

from __future__ import annotations

from taskflow import task

from shareflow.db import access as access_db
from shareflow.domain import states, validation
from shareflow.drivers.base import ClientRule


def client_rule(rule) -> ClientRule:
    """The export client of a rule, in the normalised spelling the export
    driver takes (the rule keeps the one it was given). A rule that is no
    address (stored before the API refused such rules) goes as it is: the
    driver refuses it with a message, before anything is written."""
    try:
        access_to = validation.canonical_ip(rule.access_to)
    except ValueError:
        access_to = rule.access_to
    return ClientRule(access_to, rule.access_level)


def _sync(runtime, backend, server, share_id, *, exclude: str | None = None) -> None:
    """Make the export's client list the share's rules in effect. Under the
    share's lock, so that two access jobs on one share cannot interleave
    their read of the rules and their write of the list: a lock between the
    processes of this host, where every job of the share runs
    (``shareflow.engine.locks``)."""
    driver = runtime.backend(backend).export
    with runtime.host_locks.hold("share", share_id):
        with runtime.db.read() as s:
            rules = [
                client_rule(r)
                for r in access_db.for_share(s, share_id, states.RULES_IN_EFFECT)
                if r.id != exclude
            ]
        driver.update_access(server, share_id, rules)


class ApplyAccess(task.Task):
    """Make the export's client list exactly the share's rules in effect
    (queued, applying and active rules; not those being denied). Always the
    full list, so re-running it is harmless.

    Revert: re-applies the rules in effect without this job's own rule (the
    one that failed to apply); nothing if the export is already gone.
    """

    def __init__(self):
        super().__init__(name="apply_access")

    def execute(self, runtime, backend, server, share_id, rule_id=None):
        _sync(runtime, backend, server, share_id)

    def revert(self, runtime, backend, server, share_id, rule_id=None, **kwargs):
        if runtime.backend(backend).export.has_export(server, share_id):
            _sync(runtime, backend, server, share_id, exclude=rule_id)


class ClearAccess(task.Task):
    """Empty the export's client list before the share goes away, so no
    client keeps access to a share that is being deleted.

    Under the share's lock: an access job still running on it must not write
    its list back after this one emptied it. The lock's file goes with it:
    no access job starts on a share being deleted (rules are added to
    available shares only), and one still queued would take a new file.

    Revert: none - the share is being deleted; its rules are gone with it.
    """

    def __init__(self):
        super().__init__(name="clear_access")

    def execute(self, runtime, backend, server, share_id):
        driver = runtime.backend(backend).export
        with runtime.host_locks.hold("share", share_id, last=True):
            if driver.has_export(server, share_id):
                driver.update_access(server, share_id, [])


class ApplyInitialAccess(ApplyAccess):
    """The access step of create_share: as :class:`ApplyAccess`, except that
    for a share without rules it takes no lock. Rules can only be added to an
    available share, so a share being created normally has none, and no
    access job can be running on it: its (empty) client list is applied
    without the share's lock.

    Its start is not written (``shareflow.engine.storage.unrecorded_start``):
    it has nothing to revert, and telling the export its list again changes
    nothing - a conductor that dies meanwhile leaves it (and the export step
    before it, whose SUCCESS waits with it) to be run again.

    Revert: nothing - the export this flow created is removed by the export
    step's revert, client list and all, so there is no list to restore (and a
    backend that just failed to take a list is not asked again).
    """

    unrecorded_start = True

    def execute(self, runtime, backend, server, share_id, rule_id=None):
        with runtime.db.snapshot() as conn:
            has_rules = access_db.any_for_share(conn, share_id, states.RULES_IN_EFFECT)
        if has_rules:
            _sync(runtime, backend, server, share_id)
        else:
            runtime.backend(backend).export.update_access(server, share_id, [])

    def revert(self, *args, **kwargs):
        pass
