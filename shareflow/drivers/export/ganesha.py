"""Exports on NFS-Ganesha servers: one file per export, changed over D-Bus.

Per server (its state directory), each export is one file,
``exports.d/<share id>.conf``: a JSON comment with the export as shareflow
means it, then its EXPORT block. That file is the durable record: a
(re)started Ganesha reads every one of them (``exports.conf`` includes them
all, written at each start). A change of one export costs the same however
many exports the server has:

* add: reserve an export id, write the file, ``AddExport(file)``;
* client list: write the file, ``UpdateExport(file)`` (Ganesha changes the
  live export in place);
* remove: ``RemoveExport(id)``, then delete the file and free the id.

The file is written *before* Ganesha is told (removal: deleted after), so
whatever Ganesha serves is in the files, and a conductor that dies half-way
leaves a change written but maybe not served; the retried step finds the file
as wanted and tells Ganesha again (each call is made idempotent here), so no
change stays written but unserved. A change Ganesha refuses puts the previous
file back and fails that change alone. A change that finds the file as
wanted *and* marked served by the running Ganesha (``ganesha_served``: the
mark every change clears before it begins) tells Ganesha nothing: the
create's access step, telling the client list just exported, costs no call.
So an export removed behind the driver's back (over the bus, by hand) is
served again by Ganesha's next start or the next change of its client list,
not by telling it the same list again.

Each change holds one lock, the export's own (``export-locks/<share
id>.lock``): changes to different shares never wait for each other. Export
ids are taken by creating ``export-ids/<id>`` (a symlink naming the share)
exclusively, so two conductors never take the same id without a lock.

A Ganesha that was not started on its server's bus (one an operator runs)
takes changes the old way: ``exports.conf`` rewritten and SIGHUP, under the
server-wide ``exports.lock``; it re-reads every export, so it is O(exports).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from shareflow.drivers.base import ClientRule, ExportDriver
from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export.ganesha_dbus import AlreadyServed, BusUnavailable, NotServed
from shareflow.drivers.export.ganesha_served import ServedMark, file_version, instance
from shareflow.drivers.export.ganesha_server import ConfigRefused, GaneshaServer, _read_from, _size, log_errors
from shareflow.exceptions import ExportError
from shareflow.system import filelock
from shareflow.system.atomic_file import write_atomic

log = logging.getLogger(__name__)

IDS_DIR = "export-ids"
LOCKS_DIR = "export-locks"
#: The SIGHUP fallback's lock on the whole exports list.
LOCK_FILE = "exports.lock"
#: Ids below this are left for exports an operator may add by hand.
FIRST_EXPORT_ID = 100
#: How often a change retries a server that is down while it waits for its restart.
RETRY_DELAY = 0.05


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


def export_file(gs: GaneshaServer, share_id: str) -> Path:
    return gs.exports_dir / f"{gc.check_share_id(share_id)}.conf"


def lock_path(gs: GaneshaServer, share_id: str) -> Path:
    return gs.state_dir / LOCKS_DIR / f"{gc.check_share_id(share_id)}.lock"


def read_export(gs: GaneshaServer, share_id: str) -> gc.ExportSpec | None:
    try:
        text = export_file(gs, share_id).read_text()
    except FileNotFoundError:
        return None
    try:
        return gc.parse_export_file(text)
    except ExportError as e:
        # Never silently start over: that would drop the export.
        raise ExportError(f"{export_file(gs, share_id)}: {e}") from e


class _Ids:
    """Export ids of one server: ``export-ids/<id>`` -> share id."""

    #: Per ids directory, the id after the last one this process took: the
    #: next take starts there, so it costs one symlink instead of a listing
    #: of every export (7 ms of a create at 5,000 shares). The symlink
    #: decides between processes; a freed id is taken again once the ids
    #: wrap around, not at once (an NFS client's stale handle meets no new
    #: export under its old id soon).
    _next: dict[Path, int] = {}
    #: Taken ids tried in a row before falling back to a listing.
    PROBES = 64

    def __init__(self, gs: GaneshaServer):
        self.dir = gs.state_dir / IDS_DIR

    def take(self, share_id: str) -> int:
        """A free id, taken for ``share_id``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        candidate = self._next.get(self.dir)
        for _ in range(self.PROBES if candidate is not None else 0):
            if self._link(share_id, candidate):
                return candidate
            candidate = self._after(candidate)
        for _ in range(100):
            candidate = self._smallest_free()
            if self._link(share_id, candidate):
                return candidate
        raise _busy(f"could not take an export id in {self.dir}")

    def _link(self, share_id: str, candidate: int) -> bool:
        try:
            os.symlink(share_id, self.dir / str(candidate))
        except FileExistsError:
            return False  # taken, maybe by another conductor since we looked
        self._next[self.dir] = self._after(candidate)
        return True

    @staticmethod
    def _after(export_id: int) -> int:
        return export_id + 1 if export_id < gc.MAX_EXPORT_ID else FIRST_EXPORT_ID

    def _smallest_free(self) -> int:
        used = {int(n) for n in os.listdir(self.dir) if n.isdigit()}
        candidate = next((i for i in range(FIRST_EXPORT_ID, gc.MAX_EXPORT_ID + 1) if i not in used), None)
        if candidate is None:
            raise ExportError(f"no free export id on {self.dir.parent}")
        return candidate

    def give_back(self, export_id: int, share_id: str) -> None:
        path = self.dir / str(export_id)
        with contextlib.suppress(FileNotFoundError, OSError):
            if os.readlink(path) == share_id:
                path.unlink()
                if self._next.get(self.dir) == self._after(export_id):
                    self._next[self.dir] = export_id  # our last take, undone: the next one takes it again


class GaneshaExportDriver(ExportDriver):
    """``servers``: the backend's fixed servers by id (DHSS=false). ``resolve``
    (DHSS=true): finds a share server's Ganesha from the server dict a task was
    handed - by the server's id, validated, at its address - or None when
    that server is not on the host (any more): nothing is exported there
    then, and removing an export or emptying its client list is done already."""

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

    @contextlib.contextmanager
    def _locked(self, gs: GaneshaServer, share_id: str, *, remove: bool = False) -> Iterator[ServedMark]:
        # One export's lock, held for one change: a file write and a D-Bus
        # call or two (milliseconds) unless the server is down and being
        # restarted; the wait for it is bounded all the same. The lock file
        # holds the export's served mark (ganesha_served).
        path = lock_path(gs, share_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        gs.exports_dir.mkdir(parents=True, exist_ok=True)
        with filelock.locked(path, timeout=self._timeout, error=_busy, remove=remove) as fd:
            yield ServedMark(fd)

    @staticmethod
    def _serving(gs: GaneshaServer, share_id: str, mark: ServedMark) -> str | None:
        """The running server's instance if it serves the export as its file
        says (the last change was served by this very instance, and the file
        is still the one it served), else None."""
        by = instance(gs.pid())
        return by if mark.served_by(by, file_version(export_file(gs, share_id))) else None

    # --- telling Ganesha ------------------------------------------------------

    def _on_server(self, gs: GaneshaServer, what: str, call: Callable[[int, bool], None]) -> None:
        """Run ``call(pid, on_bus)`` against the running server, waiting (up to its
        ``restart_wait``) for one that is down or restarting: its supervisor
        brings it back within about a second, and failing the change at once
        would fail a tenant's operation - or the undo of one - for a restart
        already under way. A server that comes back has read the files, so
        the retried call finds the change there already or makes it."""
        deadline = time.monotonic() + min(gs.restart_wait, self._timeout)
        while True:
            pid = gs.pid()
            if pid is not None:
                on_bus = gs.on_bus(pid)
                try:
                    call(pid, on_bus)
                    return
                except BusUnavailable as e:
                    last: ExportError = e
                # The SIGHUP fallback waits for a restart itself (reload).
            else:
                last = ExportError(f"NFS-Ganesha in {gs.state_dir} is not running",
                                   user_message="the NFS server is not running")
            if time.monotonic() >= deadline:
                raise ExportError(f"{what}: {last}", user_message=last.user_message) from last
            time.sleep(RETRY_DELAY)

    def _reload_all(self, gs: GaneshaServer) -> None:
        """The SIGHUP fallback: the include list rewritten, every export re-read."""
        with filelock.locked(gs.state_dir / LOCK_FILE, timeout=self._timeout, error=_busy):
            gs.write_exports_list()
            gs.reload()

    def _refused(self, gs: GaneshaServer, e: ConfigRefused, offset: int, spec: gc.ExportSpec) -> ConfigRefused:
        """Ganesha's reply names the failing block; why it failed is in its log."""
        lines = [line for line in log_errors(_read_from(gs.log_path, offset))
                 if spec.path in line or spec.pseudo in line]
        if not lines:
            return e
        return ConfigRefused(f"{e} | " + " | ".join(lines[:5]), user_message=e.user_message)

    def _serve(self, gs: GaneshaServer, share_id: str, spec: gc.ExportSpec, *, new: bool,
               mark: ServedMark, served_by: str | None = None) -> None:
        """Make the running server serve ``spec`` as its file says;
        ``served_by``: the instance that served the export before its file
        changed (``_serving``), if any."""
        conf = str(export_file(gs, share_id))

        def call(pid: int, on_bus: bool) -> None:
            if not on_bus:
                mark.changing()
                self._reload_all(gs)
                return
            by = instance(pid)
            # Served by this very server until the file changed: the client
            # list changes in place then - no export is created.
            in_place = not new and by is not None and by == served_by
            mark.changing()
            mgr = gs.export_manager()
            offset = _size(gs.log_path)
            if in_place:
                try:
                    mgr.update(conf, spec.export_id)
                except ConfigRefused:
                    # Not served after all (removed behind this driver's
                    # back: over the bus, by hand), or the list is refused:
                    # tried as below, which creates it or fails the same.
                    log.warning("in-place update of the export of share %s refused by %s: trying it as a "
                                "creation", share_id, gs)
                    in_place = False
            try:
                if not in_place:
                    # Both calls may create the export, which makes Ganesha
                    # scan its mount table for the export's filesystem.
                    with gs.creating_export(share_id, spec.path):
                        if new:
                            try:
                                mgr.add(conf, spec.export_id)
                            except AlreadyServed:
                                mgr.update(conf, spec.export_id)  # (a restart read the file already)
                        else:
                            # Also adds it when it is not served (a previous
                            # attempt died between the file and the call).
                            mgr.update(conf, spec.export_id)
            except ConfigRefused as e:
                raise self._refused(gs, e, offset, spec) from e
            served = file_version(conf)
            if by is not None and served is not None:
                mark.served(by, served)

        self._on_server(gs, f"export of share {share_id}", call)

    def _withdraw(self, gs: GaneshaServer, share_id: str, spec: gc.ExportSpec, mark: ServedMark) -> None:
        """Stop serving the export, then delete its file and free its id."""
        path = export_file(gs, share_id)
        mark.changing()

        def call(_pid: int, on_bus: bool) -> None:
            if not on_bus:
                path.unlink(missing_ok=True)
                try:
                    self._reload_all(gs)
                except ExportError:
                    write_atomic(path, gc.render_export_file(spec))
                    raise
                return
            with contextlib.suppress(NotServed):
                gs.export_manager().remove(spec.export_id)

        self._on_server(gs, f"removal of the export of share {share_id}", call)
        path.unlink(missing_ok=True)
        _Ids(gs).give_back(spec.export_id, share_id)

    def _write_and_serve(self, gs: GaneshaServer, share_id: str, spec: gc.ExportSpec,
                         previous: gc.ExportSpec | None, mark: ServedMark) -> None:
        """Write the export's file, then have it served; on failure the
        previous file (or none) is put back, so a restarted server never
        reads a change that failed."""
        text = gc.render_export_file(spec)  # refuses a value Ganesha would misread, before any write
        path = export_file(gs, share_id)
        served_by = None if previous is None else self._serving(gs, share_id, mark)
        mark.changing()  # before the file: a death after it must leave the mark so
        write_atomic(path, text)
        try:
            self._serve(gs, share_id, spec, new=previous is None, mark=mark, served_by=served_by)
        except ExportError as e:
            log.error("export of share %s not served, previous one put back: %s", share_id, e)
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, gc.render_export_file(previous))
            raise

    # --- the driver interface ---------------------------------------------------

    def add_export(self, server: dict, share_id: str, path: str) -> list[str]:
        share_id = gc.check_share_id(share_id)
        path = gc.check_path(path)
        if not Path(path).is_dir():
            # Ganesha would refuse it; say so before touching state.
            raise ExportError(f"cannot export {path}: not a directory")
        gs = self._server(server)
        if gs is None:
            raise ExportError(f"share server {server.get('id')!r} does not exist",
                              user_message="the share server does not exist")
        with self._locked(gs, share_id) as mark:
            current = read_export(gs, share_id)
            if current is not None and current.path == path:
                if self._serving(gs, share_id, mark) is None:
                    self._serve(gs, share_id, current, new=False, mark=mark)  # served now
            else:
                if current is not None:
                    # Ganesha cannot change the path of a live export id:
                    # take the old export down first, then add the new one.
                    self._withdraw(gs, share_id, current, mark)
                ids = _Ids(gs)
                export_id = ids.take(share_id)
                spec = gc.ExportSpec(export_id=export_id, path=path, pseudo=gc.pseudo_path(share_id))
                try:
                    self._write_and_serve(gs, share_id, spec, None, mark)
                except BaseException:
                    ids.give_back(export_id, share_id)
                    raise
            return [location(gs.address, share_id)]

    def remove_export(self, server: dict, share_id: str) -> None:
        share_id = gc.check_share_id(share_id)
        gs = self._server(server)
        if gs is None:
            return  # no server, no export
        with self._locked(gs, share_id, remove=True) as mark:
            current = read_export(gs, share_id)
            if current is not None:
                self._withdraw(gs, share_id, current, mark)

    def update_access(self, server: dict, share_id: str, rules: list[ClientRule]) -> None:
        share_id = gc.check_share_id(share_id)
        clients = _rules(rules)
        gs = self._server(server)
        if gs is None:
            if clients:
                raise ExportError(f"share {share_id}: share server {server.get('id')!r} does not exist",
                                  user_message="the share server does not exist")
            return  # nobody may access an export that does not exist: done
        with self._locked(gs, share_id) as mark:
            current = read_export(gs, share_id)
            if current is None:
                if clients:
                    raise ExportError(f"share {share_id} is not exported on this server")
                return  # nobody may access an export that does not exist: done
            wanted = replace(current, clients=clients)
            if wanted == current:
                # Written already. Told again unless the running server
                # served this very file (a previous attempt may have died
                # between the file and the call: ganesha_served).
                if self._serving(gs, share_id, mark) is None:
                    self._serve(gs, share_id, current, new=False, mark=mark)
            else:
                self._write_and_serve(gs, share_id, wanted, current, mark)

    def has_export(self, server: dict, share_id: str) -> bool:
        # One file, not a parse of every export's (the files are the record).
        gs = self._server(server)
        return gs is not None and export_file(gs, share_id).is_file()

    def list_exports(self, server: dict) -> dict[str, list[ClientRule]]:
        gs = self._server(server)
        if gs is None:
            return {}
        out = {}
        for path in gs.export_files() if gs.exports_dir.is_dir() else []:
            try:
                spec = gc.parse_export_file(path.read_text())
            except FileNotFoundError:
                continue  # removed while listing
            except ExportError as e:
                raise ExportError(f"{path}: {e}") from e
            out[path.stem] = list(spec.clients)
        return dict(sorted(out.items()))

