"""Drivers know nothing of the tables: no module under shareflow/drivers
imports shareflow.db (nor anything that reaches the database for them: the
services, the tasks, the engine). Tasks and services own the records and hand
drivers plain values."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shareflow
from shareflow.drivers import base, registry

DRIVERS = Path(shareflow.__file__).parent / "drivers"
#: Packages a driver module must not import (the records' side of the seam).
FORBIDDEN = ("shareflow.db", "shareflow.services", "shareflow.tasks", "shareflow.engine", "sqlalchemy")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (relative
    imports resolved against its package)."""
    package = ".".join(path.relative_to(DRIVERS.parent.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # ``from shareflow import db`` imports shareflow.db too.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(path: Path) -> list[str]:
    return sorted(m for m in imported_modules(path)
                  if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_no_driver_module_imports_the_database():
    files = sorted(DRIVERS.rglob("*.py"))
    assert len(files) > 10  # the walk found the drivers
    offenders = {str(f.relative_to(DRIVERS)): forbidden_imports(f) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_the_check_sees_every_form_of_import(tmp_path, monkeypatch):
    """The walk would catch an import of the database in any of its forms."""
    fake = DRIVERS / "share" / "x.py"
    for source in ("import shareflow.db.engine", "from shareflow.db import networks",
                   "from shareflow import db", "def f():\n    from shareflow.db.models import Share\n",
                   "from ...db import share_servers", "import sqlalchemy as sa"):
        monkeypatch.setattr(Path, "read_text", lambda self, encoding=None, s=source: s)
        assert forbidden_imports(fake), source
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: "from shareflow.system import netns")
    assert forbidden_imports(fake) == []


def test_exceptions_used_across_layers_live_in_the_driver_interface():
    assert issubclass(base.ServerBusy, Exception) and issubclass(base.ServerInUse, Exception)
    helper = registry.share_server_helper()
    assert issubclass(helper, base.ShareServerHelper)
    sid = "0b5c4a4e-3c1b-4d53-9a53-0d7f4e1c2b10"
    details = helper.backend_details(sid)
    assert details["netns"] == f"sf-srv-{sid}" and all(isinstance(v, str) for v in details.values())


def test_build_backend_takes_no_database():
    import inspect

    assert "db" not in inspect.signature(registry.build_backend).parameters


def test_the_flat_helper_hands_on_the_allocation_the_task_chose():
    from shareflow.drivers.network.flat import FlatNetworkHelper
    from shareflow.drivers.network.static import StaticNetworkHelper
    from shareflow.exceptions import NetworkError

    chosen = {"allocation_id": "a1", "network_id": "n1", "address": "198.51.100.7", "prefixlen": 24,
              "gateway": None, "bridge": "br-t", "mtu": 1400}
    flat = FlatNetworkHelper()
    assert flat.needs_address and not StaticNetworkHelper("b").needs_address
    assert flat.allocate("s1", dict(chosen, extra="dropped")) == chosen
    assert flat.allocate("s1", {}) == {}
    flat.release(chosen)
    for bad in ({k: v for k, v in chosen.items() if k != "bridge"}, dict(chosen, address="not-an-ip")):
        with pytest.raises(NetworkError):
            flat.allocate("s1", bad)
    assert StaticNetworkHelper("b").allocate("s1", chosen) == {}
