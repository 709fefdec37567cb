"""A shrink of a share whose backend's driver reports ``shrink_support``
false (the image driver: XFS cannot shrink) is refused by the resize service
with a 400 before anything changes: no status change, no job - a capability,
not a failed job. The service knows it from the capabilities the pool's
conductors reported (an API node has no backend configuration). Real SQLite
database; the refusal comes before the job poster is ever needed (the
service has none here, so reaching it would fail the test)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from shareflow import config
from shareflow.db import migrate
from shareflow.db import pools as pools_db
from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Share
from shareflow.domain import states
from shareflow.drivers.share import registry as share_drivers
from shareflow.exceptions import InvalidInput
from shareflow.services.context import Caller
from shareflow.services.resize import ResizeService

T0 = datetime(2026, 11, 30, 12, 0, 0)
SHARE = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def service(tmp_path):
    cfg = config.parse({"database": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"}}, tmp_path / "shareflow.toml")
    db = Database(cfg.database.url)
    migrate.upgrade(db)
    with db.write() as s:
        st = types_db.create(s, now=T0, name="bulk", specs={"driver_handles_share_servers": "False"})
        shares_db.create(s, now=T0, id=SHARE, project_id="p", size=2, share_proto="NFS", status=states.AVAILABLE,
                         share_type_id=st.id, is_public=False, backend="h@bulk", host="h@bulk#pool0")
        pools_db.report(s, host="h@bulk#pool0", backend="bulk", pool="pool0", dhss=False, total_gb=10,
                        free_gb=10, now=T0, capabilities=share_drivers.capabilities_of("image"))
    try:
        yield ResizeService(cfg, db, poster=None, clock=lambda: T0), db
    finally:
        db.dispose()


def test_shrink_on_a_backend_that_cannot_shrink_is_refused_before_anything(service):
    resize, db = service
    with pytest.raises(InvalidInput) as refused:
        resize.shrink(Caller(project_id="p"), SHARE, 1)
    assert "does not support shrinking" in refused.value.user_message
    assert refused.value.http_status == 400
    with db.read() as s:
        share = s.get(Share, SHARE)
        assert (share.status, share.size, share.pending_size) == (states.AVAILABLE, 2, None)
        assert s.scalar(sa.text("SELECT count(*) FROM jobs")) == 0


def test_the_usual_checks_come_first(service):
    """A bad size is Manila's usual answer, whatever the backend."""
    resize, _ = service
    with pytest.raises(InvalidInput, match="must be less than current size"):
        resize.shrink(Caller(project_id="p"), SHARE, 2)
