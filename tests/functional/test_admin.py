"""Admin recovery on the real stack, through python-manilaclient: reset_status
and force_delete (members are refused with 403), force_delete of shares in
any status - including one whose create is still running - leaving nothing
on the backend; and share metadata, update and availability zones as
manilaclient calls them."""

from __future__ import annotations

import pytest
from manilaclient import exceptions as mexc

from shareflow.drivers.export.ganesha_config import pseudo_path
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant, exported, limit_of


@pytest.fixture
def tenant(faults):
    t = Tenant(faults, "admin")
    try:
        yield t
    finally:
        t.cleanup()


def backend_is_clean(stack, share_id: str) -> None:
    backend = stack.backend()
    assert share_id not in backend.share.list_volumes()
    assert not exported(stack, share_id)
    conf = stack.exports_text()
    assert pseudo_path(share_id) not in conf
    with open("/proc/self/mountinfo") as f:
        assert share_id not in f.read()


def test_members_may_not_reset_or_force_delete(tenant):
    share = tenant.create(1)
    with pytest.raises(mexc.Forbidden):
        tenant.m.shares.reset_state(share, "error")
    with pytest.raises(mexc.Forbidden):
        tenant.m.shares.force_delete(share)
    assert tenant.m.shares.get(share.id).status == "available"
    assert share.id in tenant.stack.backend().share.list_volumes()


def test_reset_status_hands_an_errored_share_back(tenant):
    stack, m, admin = tenant.stack, tenant.m, tenant.admin
    share = tenant.create(1)
    stack.set_faults({"resize_volume": "fail"})
    m.shares.extend(share, 2)
    assert tenant.wait(share.id, {"available", "extending_error"}).status == "extending_error"
    stack.clear_faults()
    # Manila: a share in extending_error may not be deleted by its owner ...
    with pytest.raises(mexc.Forbidden):
        m.shares.delete(share)
    # ... until an admin resets it; any share status is accepted, nonsense is not.
    with pytest.raises(mexc.BadRequest):
        admin.shares.reset_state(share, "sparkling")
    admin.shares.reset_state(share, "error")
    assert m.shares.get(share.id).status == "error"
    admin.shares.reset_state(share, "available")
    assert m.shares.get(share.id).status == "available" and limit_of(stack, share.id) == 1 << 30
    # The old (2.6) action name works as well.
    stack.manila(version="2.6").shares.reset_state(share, "available")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the delete")
    backend_is_clean(stack, share.id)


@pytest.mark.parametrize("status", ["error_deleting", "extending_error", "shrinking_possible_data_loss_error",
                                    "available"])
def test_force_delete_whatever_the_status(tenant, status):
    stack, admin = tenant.stack, tenant.admin
    share = tenant.create(1)
    rule = tenant.allow(share, stack.nfs(0))
    admin.shares.reset_state(share, status)
    admin.shares.force_delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the forced delete")
    with pytest.raises(mexc.NotFound):
        tenant.m.shares.get(share.id)
    backend_is_clean(stack, share.id)
    assert stack.finished_job(share.id, "delete_share").state == "succeeded"
    assert stack.nfs(0).ls(pseudo_path(share.id)).returncode != 0
    assert rule["id"]


def test_force_delete_of_a_share_whose_volume_is_already_gone(tenant):
    stack, admin = tenant.stack, tenant.admin
    share = tenant.create(1)
    # Whatever removed them, the delete job tolerates absence at every step.
    backend = stack.backend()
    backend.export.remove_export(backend.server.server_for(share.id), share.id)
    backend.share.delete_volume(share.id)
    admin.shares.reset_state(share, "error")
    admin.shares.force_delete(share.id)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the forced delete")
    backend_is_clean(stack, share.id)


def test_force_delete_while_the_create_still_runs(tenant):
    """The delete job wins the share; the create job, let go afterwards,
    finds the share gone at its last step and undoes everything it made."""
    stack, admin = tenant.stack, tenant.admin
    stack.set_faults({"create_volume": "hang"})
    share = tenant.m.shares.create("NFS", 1, name="stuck")
    tenant.share_ids.append(share.id)
    stack.job_inside(share.id, "create_share", "create_volume")
    assert tenant.m.shares.get(share.id).status == "creating"
    with pytest.raises(mexc.Forbidden):
        tenant.m.shares.delete(share)  # a member's delete is refused while it is busy
    admin.shares.force_delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the forced delete")
    stack.clear_faults()
    create = stack.finished_job(share.id, "create_share", timeout=60)
    assert (create.state, create.failed_step) == ("reverted", "finish")
    backend_is_clean(stack, share.id)
    assert stack.share_row(share.id).status == "deleted"


def test_metadata_update_and_zones_through_manilaclient(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(1, metadata={"team": "a"})
    assert m.shares.get_metadata(share)._info == {"team": "a"}
    m.shares.set_metadata(share, {"env": "prod"})
    assert m.shares.get(share.id).metadata == {"team": "a", "env": "prod"}
    m.shares.update_all_metadata(share, {"only": "me"})
    assert m.shares.get_metadata(share)._info == {"only": "me"}
    m.shares.delete_metadata(share, ["only"])
    assert m.shares.get(share.id).metadata == {}
    with pytest.raises(mexc.NotFound):
        m.shares.delete_metadata(share, ["only"])
    with pytest.raises(mexc.BadRequest):
        m.shares.set_metadata(share, {"k": "v" * 1024})

    m.shares.update(share, display_name="renamed", display_description="described")
    got = m.shares.get(share.id)
    assert (got.name, got.description) == ("renamed", "described")
    with pytest.raises(mexc.BadRequest):
        m.shares.update(share, display_name="n" * 256)

    zones = m.availability_zones.list()
    assert [z.name for z in zones] == ["nova"] and got.availability_zone == "nova"
    assert [z.id for z in stack.manila(version="2.6").availability_zones.list()] == [zones[0].id]
    in_zone = tenant.create(1, availability_zone="nova")
    assert in_zone.availability_zone == "nova"
    with pytest.raises(mexc.NotFound):
        m.shares.create("NFS", 1, availability_zone="elsewhere")
