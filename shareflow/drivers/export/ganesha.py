"""Exports on NFS-Ganesha servers, driven through files and SIGHUP.

Per server, the source of truth is ``exports.json`` in its state directory::

    {"version": 1, "serial": 7,
     "exports": {"<share id>": {"export_id": 100, "path": "/...", "pseudo": "/shares/<id>",
                                "clients": [{"access_to": "192.0.2.10", "access_level": "rw"}]}}}

``exports.conf`` (what Ganesha reads) is rendered from it, and
``exports.applied`` holds the serial Ganesha last loaded successfully. Every
change runs under an exclusive flock on ``exports.lock`` (conductor processes
share the directory): read state, change, write state, render, reload, verify,
record the applied serial. A conductor that dies half-way leaves serial ahead
of applied; the next change (or a retry of the same one) re-renders and
reloads, so no change is ever written but not served.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from shareflow.drivers.base import ClientRule, ExportDriver
from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export.ganesha_server import ConfigRefused, GaneshaServer
from shareflow.exceptions import ExportError
from shareflow.system import filelock
from shareflow.system.atomic_file import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "exports.json"
APPLIED_FILE = "exports.applied"
LOCK_FILE = "exports.lock"
#: Ids below this are left for exports an operator may add by hand.
FIRST_EXPORT_ID = 100
STATE_VERSION = 1


@dataclass(frozen=True)
class State:
    serial: int
    exports: dict[str, gc.ExportSpec]

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "serial": self.serial,
                "exports": {
                    sid: {
                        "export_id": e.export_id,
                        "path": e.path,
                        "pseudo": e.pseudo,
                        "clients": [c.to_json() for c in e.clients],
                    }
                    for sid, e in sorted(self.exports.items())
                },
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('version')!r}")
        exports = {
            gc.check_share_id(sid): gc.ExportSpec(
                export_id=e["export_id"],
                path=e["path"],
                pseudo=e["pseudo"],
                clients=tuple(ClientRule.from_json(c) for c in e["clients"]),
            )
            for sid, e in data["exports"].items()
        }
        return cls(serial=int(data["serial"]), exports=exports)


def _busy(message: str) -> ExportError:
    return ExportError(message, user_message="the NFS server is busy with other changes; try again")


def _rules(rules: list) -> tuple[ClientRule, ...]:
    """Normalise ``rules`` (ClientRule objects, or their JSON dicts after a
    task reload) into the stored, sorted form, validating every value."""
    out = []
    for r in rules:
        rule = ClientRule.from_json(r) if isinstance(r, dict) else r
        if not isinstance(rule, ClientRule):
            raise ExportError(f"invalid access rule {r!r}")
        out.append(rule)
    return tuple(gc.client_rules(out))


def location(address: str, share_id: str) -> str:
    """``host:/shares/<id>``; an IPv6 host in brackets as mount expects."""
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{host}:{gc.pseudo_path(share_id)}"


class _Session:
    """The locked view of one server's state; ``apply`` makes a new state live."""

    def __init__(self, server: GaneshaServer):
        self.server = server
        self.dir = server.state_dir
        self.state = self._read()

    def _read(self) -> State:
        try:
            text = (self.dir / STATE_FILE).read_text()
        except FileNotFoundError:
            return State(serial=0, exports={})
        try:
            return State.from_json(text)
        except (ValueError, KeyError, TypeError, ExportError) as e:
            # Never silently start over: that would drop every export.
            raise ExportError(f"{self.dir / STATE_FILE} is unreadable: {e}") from e

    def _applied(self) -> int:
        try:
            return int((self.dir / APPLIED_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return -1

    def ensure_applied(self) -> None:
        """Serve the current state if a previous change stopped before it was served."""
        if self._applied() != self.state.serial:
            self._serve(self.state)

    def apply(self, exports: dict[str, gc.ExportSpec]) -> None:
        if exports == self.state.exports:
            self.ensure_applied()
            return
        old = self.state
        new = State(serial=old.serial + 1, exports=exports)
        # The candidate is checked before it replaces the live file: every
        # value must be one token Ganesha reads as meant (ganesha_config.token),
        # so a value it would refuse fails this change alone, here.
        gc.render_exports(new.exports.values())
        write_atomic(self.dir / STATE_FILE, new.to_json())
        self.state = new
        try:
            self._serve(new)
        except ExportError as e:
            # Put the last good state back so one bad change does not stay
            # in the file and fail every later reload too.
            log.error("reload failed, restoring previous exports: %s", e)
            back = State(serial=new.serial + 1, exports=old.exports)
            write_atomic(self.dir / STATE_FILE, back.to_json())
            self.state = back
            if isinstance(e, ConfigRefused):
                try:
                    self._serve(back)
                except ExportError as e2:
                    log.error("restoring previous exports failed too: %s", e2)
            else:
                # The server did not answer (or is gone): do not wait for it
                # a second time with the lock held. The file is put back
                # unserved (applied stays behind serial), so the next change
                # serves it first.
                write_atomic(self.server.exports_path, gc.render_exports(back.exports.values()))
            raise

    def _serve(self, state: State) -> None:
        write_atomic(self.server.exports_path, gc.render_exports(state.exports.values()))
        self.server.reload()
        write_atomic(self.dir / APPLIED_FILE, f"{state.serial}\n")

    def free_export_id(self) -> int:
        used = {e.export_id for e in self.state.exports.values()}
        for candidate in range(FIRST_EXPORT_ID, gc.MAX_EXPORT_ID + 1):
            if candidate not in used:
                return candidate
        raise ExportError(f"no free export id on {self.dir}")


class GaneshaExportDriver(ExportDriver):
    """``servers``: the backend's fixed servers by id (DHSS=false). ``resolve``
    (DHSS=true): finds a share server's Ganesha from the server dict a task was
    handed - by the server's id, validated, never from the dict's other
    values - or None when that server does not exist (any more): nothing is
    exported there then, and removing an export or emptying its client list
    is done already."""

    def __init__(self, servers: Mapping[str, GaneshaServer], *, timeout: float,
                 resolve: Callable[[dict], GaneshaServer | None] | None = None):
        self._servers = dict(servers)
        self._timeout = timeout
        self._resolve = resolve

    def _server(self, server: dict) -> GaneshaServer | None:
        sid = server.get("id") if isinstance(server, dict) else None
        if isinstance(sid, str) and sid in self._servers:
            return self._servers[sid]
        if self._resolve is not None:
            return self._resolve(server)
        raise ExportError(f"unknown share server {sid!r}")

    @contextmanager
    def _session(self, gs: GaneshaServer) -> Iterator[_Session]:
        # The lock is held for one change: a render and a reload or two, each
        # ended by what Ganesha logs (refusals included), so a holder keeps
        # it for well under a second unless the server stops answering; the
        # wait for it is bounded all the same.
        gs.state_dir.mkdir(parents=True, exist_ok=True)
        with filelock.locked(gs.state_dir / LOCK_FILE, timeout=self._timeout, error=_busy):
            yield _Session(gs)

    def add_export(self, server: dict, share_id: str, path: str) -> list[str]:
        share_id = gc.check_share_id(share_id)
        path = gc.check_path(path)
        if not Path(path).is_dir():
            # Ganesha would refuse it on reload; say so before touching state.
            raise ExportError(f"cannot export {path}: not a directory")
        gs = self._server(server)
        if gs is None:
            raise ExportError(f"share server {server.get('id')!r} does not exist",
                              user_message="the share server does not exist")
        with self._session(gs) as s:
            current = s.state.exports.get(share_id)
            if current is not None and current.path == path:
                s.ensure_applied()
            else:
                exports = dict(s.state.exports)
                if current is not None:
                    # Ganesha cannot change the path of a live export id:
                    # take the old export down first, then add the new one.
                    del exports[share_id]
                    s.apply(dict(exports))
                exports[share_id] = gc.ExportSpec(
                    export_id=s.free_export_id(), path=path, pseudo=gc.pseudo_path(share_id)
                )
                s.apply(exports)
            return [location(s.server.address, share_id)]

    def remove_export(self, server: dict, share_id: str) -> None:
        share_id = gc.check_share_id(share_id)
        gs = self._server(server)
        if gs is None:
            return  # no server, no export
        with self._session(gs) as s:
            exports = dict(s.state.exports)
            exports.pop(share_id, None)
            s.apply(exports)

    def update_access(self, server: dict, share_id: str, rules: list[ClientRule]) -> None:
        share_id = gc.check_share_id(share_id)
        clients = _rules(rules)
        gs = self._server(server)
        if gs is None:
            if clients:
                raise ExportError(f"share {share_id}: share server {server.get('id')!r} does not exist",
                                  user_message="the share server does not exist")
            return  # nobody may access an export that does not exist: done
        with self._session(gs) as s:
            current = s.state.exports.get(share_id)
            if current is None:
                if clients:
                    raise ExportError(f"share {share_id} is not exported on this server")
                s.ensure_applied()
                return  # nobody may access an export that does not exist: done
            exports = dict(s.state.exports)
            exports[share_id] = replace(current, clients=clients)
            s.apply(exports)

    def list_exports(self, server: dict) -> dict[str, list[ClientRule]]:
        gs = self._server(server)
        if gs is None:
            return {}
        with self._session(gs) as s:
            return {sid: list(e.clients) for sid, e in sorted(s.state.exports.items())}
