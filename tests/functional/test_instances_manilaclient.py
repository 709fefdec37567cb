"""Share instances, snapshot instances and share replicas on the real stack,
through unmodified python-manilaclient: an admin lists and shows a share's
one instance (its host, status and export locations as the share has them),
resets it and force-deletes it (the share goes, nothing is left on the
backend); snapshot instances are listed and reset; a member is refused the
instance API (403) but lists the replicas of its share (none) as a client
does before deleting it."""

from __future__ import annotations

import uuid

import pytest
from manilaclient import exceptions as mexc

from tests.fixtures.stack import BACKEND, STACK_HOST, wait_until
from tests.functional.lifecycle_helpers import Tenant


@pytest.fixture
def tenant(faults):
    t = Tenant(faults, "inst")
    try:
        yield t
    finally:
        t.cleanup()


@pytest.fixture
def snappy(tenant):
    """A share type with snapshots, deleted after the test's shares (its own handle)."""
    made = tenant.admin.share_types.create(f"inst-{uuid.uuid4().hex[:6]}", spec_driver_handles_share_servers=False,
                                           spec_snapshot_support=True)
    yield made
    tenant.cleanup()
    tenant.admin.share_types.delete(made)


def test_instances_through_manilaclient(tenant, snappy):
    stack, m, admin = tenant.stack, tenant.m, tenant.admin
    share = tenant.create(1, share_type=snappy.name)
    row = stack.share_row(share.id)

    (instance,) = [i for i in admin.share_instances.list() if i.share_id == share.id]
    assert instance.id != share.id and instance.replica_state is None
    assert instance.host == row.host and instance.host.startswith(f"{STACK_HOST}@{BACKEND}#")
    assert (instance.status, instance.availability_zone) == ("available", row.availability_zone)
    assert admin.share_instances.get(instance.id).share_id == share.id
    locations = admin.share_instance_export_locations.list(instance)
    assert [el.path for el in locations] == [el.path for el in m.share_export_locations.list(share)]
    assert {el.share_instance_id for el in locations} == {instance.id}
    assert all(el.is_admin_only is False for el in locations)
    assert admin.share_instance_export_locations.get(instance, locations[0].id).path == locations[0].path
    # manilaclient sends an id as export_location_id, a path as export_location_path.
    assert [i.id for i in admin.share_instances.list(export_location=locations[0].path)] == [instance.id]
    assert [i.id for i in admin.share_instances.list(export_location=locations[0].id)] == [instance.id]

    with pytest.raises(mexc.Forbidden):
        m.share_instances.list()
    with pytest.raises(mexc.Forbidden):
        m.share_instances.get(instance.id)
    # What a client checks before deleting a share: its replicas (none).
    assert m.share_replicas.list(share) == [] and admin.share_replicas.list() == []

    admin.share_instances.reset_state(instance, "error")
    assert m.shares.get(share.id).status == "error"
    admin.share_instances.reset_state(instance, "available")
    assert m.shares.get(share.id).status == "available"

    snap = m.share_snapshots.create(share)
    wait_until(lambda: m.share_snapshots.get(snap.id).status == "available", 30, "the snapshot")
    (snap_instance,) = admin.share_snapshot_instances.list(snapshot=snap)
    assert snap_instance.snapshot_id == snap.id and snap_instance.status == "available"
    (detailed,) = admin.share_snapshot_instances.list(detailed=True, snapshot=snap)
    assert (detailed.share_id, detailed.share_instance_id) == (share.id, instance.id)
    admin.share_snapshot_instances.reset_state(snap_instance, "error")
    assert m.share_snapshots.get(snap.id).status == "error"
    admin.share_snapshot_instances.reset_state(snap_instance, "available")
    with pytest.raises(mexc.Forbidden):
        m.share_snapshot_instances.list()
    m.share_snapshots.delete(snap)
    wait_until(lambda: snap.id not in stack.backend().share.list_snapshots()
               and not admin.share_snapshot_instances.list(snapshot=snap), 30, "the snapshot's delete")

    admin.share_instances.force_delete(instance)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the forced delete")
    with pytest.raises(mexc.NotFound):
        admin.share_instances.get(instance.id)
    assert share.id not in stack.backend().share.list_volumes()
