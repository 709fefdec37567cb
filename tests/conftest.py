"""Test-wide plugins and fixtures.

The fixture modules under tests/fixtures start real components (ZooKeeper,
PostgreSQL, btrfs loop pools, NFS-Ganesha, network namespaces) and clean up
what they start by their own handles.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from shareflow.db import migrate
from shareflow.db.engine import Database

pytest_plugins = [
    "tests.fixtures.coordination",
    "tests.fixtures.gophercloud",
    "tests.fixtures.keystone",
    "tests.fixtures.postgres",
    "tests.fixtures.storage",
    "tests.fixtures.stack",
    "tests.fixtures.tenant_networks",
]


@pytest.fixture(scope="session", autouse=True)
def _manilaclient_without_completion_cache(tmp_path_factory) -> Iterator[None]:
    """manilaclient writes a completion cache on each list and create through
    attributes of the shared manager object (set, then deleted), so two
    threads of a test sharing one client race: ``'ShareManager' object has
    no attribute '_uuid_cache'``. Pointing the cache below a regular file
    makes its open fail, which manilaclient ignores by design; it also keeps
    the tests from writing into the home directory."""
    blocker = tmp_path_factory.mktemp("manilaclient") / "not-a-directory"
    blocker.write_text("")
    mp = pytest.MonkeyPatch()
    mp.setenv("MANILACLIENT_UUID_CACHE_DIR", str(blocker / "cache"))
    yield
    mp.undo()


@pytest.fixture
def postgres_db_url(postgres_cluster) -> Iterator[str]:
    """A fresh, empty database in the session's private PostgreSQL, dropped
    after the test (what still holds a connection to it is closed)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    yield url
    postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request, tmp_path) -> Iterator[Database]:
    """A :class:`Database` on a fresh database with no tables yet (a
    migration test brings it to the revision it starts from), once on SQLite
    and once on the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_db_url")
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """The URL of a fresh database migrated to the latest schema, once on
    SQLite and once on the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_db_url")
    database = Database(url)
    migrate.upgrade(database)
    database.dispose()
    return url


@pytest.fixture
def db(db_url) -> Iterator[Database]:
    """A :class:`Database` on ``db_url``."""
    database = Database(db_url)
    yield database
    database.dispose()
