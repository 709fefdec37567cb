"""Share drivers by name: what ``share_driver = "NAME"`` in a backend's table
means.

Each share driver's module registers one :class:`ShareDriverKind` at import:
its name, the table of the backend that configures it (parsed into a typed
value by ``parse``, at start-up, by ``shareflow.config``), its pool
preparation (what ``shareflow run`` and the tests do to have a pool to work
on: a loop image, formatted and mounted) and its :class:`ShareDriver` class.
Every module of this package is imported on the first look-up, so a third
driver is one new module here that calls :func:`register`.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shareflow.drivers.base import ShareDriver

_lock = threading.Lock()
_kinds: dict[str, ShareDriverKind] = {}
_loaded = False


@dataclass(frozen=True)
class PreparedPool:
    """A pool ``prepare_pool`` made ready (mounted); ``release`` undoes the
    mount and leaves the image and the data on it."""

    mount_point: Path
    release: Callable[[], None]


@dataclass(frozen=True)
class ShareDriverKind:
    #: ``share_driver`` in a backend's table.
    name: str
    #: The backend's table holding this driver's settings (``[backends.<section>]``).
    section: str
    #: ``(config.Section, backend state dir) -> typed settings``: reads every
    #: key it knows (with its named default); the caller rejects the rest.
    parse: Callable[[Any, Path], Any]
    #: The class built with ``driver(settings, timeout=step_timeout)``.
    driver: type[ShareDriver]
    #: ``(settings, timeout) -> PreparedPool | None``: make the pool the
    #: settings describe available when they name an image to back it
    #: (idempotent); None when there is nothing to prepare (a real device).
    prepare_pool: Callable[[Any, float], PreparedPool | None]

    def build(self, settings: Any, *, timeout: float) -> ShareDriver:
        return self.driver(settings, timeout=timeout)


def register(kind: ShareDriverKind) -> ShareDriverKind:
    """Called once by each driver's module, at import."""
    with _lock:
        existing = _kinds.get(kind.name)
        if existing is not None and existing.driver is not kind.driver:
            raise ValueError(f"share driver {kind.name!r} registered twice")
        _kinds[kind.name] = kind
    return kind


def _load() -> None:
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and module.name != "registry":
            importlib.import_module(f"{__package__}.{module.name}")
    _loaded = True


def find(name: str) -> ShareDriverKind | None:
    _load()
    return _kinds.get(name)


def get(name: str) -> ShareDriverKind:
    from shareflow.exceptions import ConfigError

    kind = find(name)
    if kind is None:
        raise ConfigError(f"unknown share driver {name!r} (known: {', '.join(names())})")
    return kind


def names() -> tuple[str, ...]:
    _load()
    return tuple(sorted(_kinds))


def sections() -> tuple[str, ...]:
    _load()
    return tuple(sorted(k.section for k in _kinds.values()))


def by_section(section: str) -> ShareDriverKind:
    _load()
    return next(k for k in _kinds.values() if k.section == section)


def capabilities_of(name: str) -> dict:
    """The capabilities every pool of the named driver has (no pool needed)."""
    return dict(get(name).driver.CAPABILITIES)
