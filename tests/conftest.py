"""Test-wide plugins and fixtures.

The fixture modules under tests/fixtures start real components (ZooKeeper,
PostgreSQL, btrfs loop pools, NFS-Ganesha, network namespaces) and clean up
what they start by their own handles.
"""

from __future__ import annotations

import uuid

import pytest

pytest_plugins = [
    "tests.fixtures.coordination",
    "tests.fixtures.postgres",
    "tests.fixtures.storage",
    "tests.fixtures.stack",
    "tests.fixtures.tenant_networks",
]


@pytest.fixture
def postgres_db_url(postgres_cluster) -> str:
    """A fresh, empty database in the session's private PostgreSQL."""
    return postgres_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
