"""Ganesha's export manager over D-Bus (``org.ganesha.nfsd.exportmgr``).

The boundary between shareflow and the bus: every failure leaves here as one
of the :class:`ExportError` classes below, never as a jeepney or socket error.

What Ganesha 4.3 does with each call (tried on this machine):

* ``AddExport(path, "EXPORT(Export_Id=N)")`` reads only ``path`` and adds the
  block with that id: "1 exports added"; an id already served is an error
  ("... already active!!!"), and so is a block it refuses (the reply says
  which block failed; the reason - "resolve_posix_filesystem(/dev) ..." -
  goes only to its log).
* ``UpdateExport(path, expr)`` replaces the block's client list and options
  in place (clients see the change at once); it adds the export when the id
  is not served, and refuses a change of ``Path`` or ``Pseudo``.
* ``RemoveExport(uint16 N)``: an id not served is an error
  ("... Export id not found").

Ganesha handles these calls one at a time in one thread; each costs what its
one file costs to parse, whatever the number of exports.
"""

from __future__ import annotations

import threading

from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from shareflow.drivers.export.dbus_daemon import GANESHA_BUS_NAME
from shareflow.drivers.export.ganesha_server import REFUSED_MESSAGE, ConfigRefused
from shareflow.exceptions import ExportError

OBJECT_PATH = "/org/ganesha/nfsd/ExportMgr"
INTERFACE = "org.ganesha.nfsd.exportmgr"
#: Errors from the bus itself (not from Ganesha) that mean "nobody answers
#: for Ganesha's name right now": it is down, or starting.
_UNAVAILABLE = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Disconnected",
})
_ALREADY_ACTIVE = "already active"
_NOT_FOUND = "Export id not found"


class BusUnavailable(ExportError):
    """No answer for Ganesha's name: the bus or the server is down (or hung)."""


class AlreadyServed(ExportError):
    """AddExport of an id the server serves already."""


class NotServed(ExportError):
    """RemoveExport of an id the server does not serve."""


class ExportManager:
    """A connection to one server's bus, opened on first use and kept; a
    broken one is opened again once. Calls from several threads take turns
    (a jeepney blocking connection is not thread-safe)."""

    def __init__(self, address: str, *, timeout: float):
        self.address = address
        self.timeout = timeout
        self._conn: DBusConnection | None = None
        self._lock = threading.Lock()
        self._target = DBusAddress(OBJECT_PATH, bus_name=GANESHA_BUS_NAME, interface=INTERFACE)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def _call(self, method: str, signature: str, body: tuple):
        msg = new_method_call(self._target, method, signature, body)
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                try:
                    if fresh:
                        self._conn = open_dbus_connection(bus=self.address)
                    reply = self._conn.send_and_get_reply(msg, timeout=self.timeout)
                    break
                except TimeoutError as e:
                    # The reply may still come on this connection: drop it
                    # so it is never taken for the answer to a later call.
                    self._drop()
                    raise BusUnavailable(f"NFS-Ganesha did not answer {method} within {self.timeout:g} s",
                                         user_message="the NFS server did not answer") from e
                except (OSError, ValueError, EOFError) as e:
                    # A kept connection the bus closed (it was restarted) is
                    # tried once more on a new one; a new one that fails
                    # means the bus is not there.
                    self._drop()
                    if fresh or attempt == 2:
                        raise BusUnavailable(f"the D-Bus of NFS-Ganesha at {self.address} is not running: {e}",
                                             user_message="the NFS server is not running") from e
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
            if name in _UNAVAILABLE:
                raise BusUnavailable(f"NFS-Ganesha is not running (on its bus: {name}: {text})",
                                     user_message="the NFS server is not running")
            if _ALREADY_ACTIVE in text:
                raise AlreadyServed(text)
            if _NOT_FOUND in text:
                raise NotServed(text)
            raise ConfigRefused(f"NFS-Ganesha refused {method}: {text.strip()}", user_message=REFUSED_MESSAGE)
        return reply.body

    def add(self, conf_path: str, export_id: int) -> None:
        self._call("AddExport", "ss", (conf_path, f"EXPORT(Export_Id={int(export_id)})"))

    def update(self, conf_path: str, export_id: int) -> None:
        self._call("UpdateExport", "ss", (conf_path, f"EXPORT(Export_Id={int(export_id)})"))

    def served(self) -> dict[int, str]:
        """Export id -> path of every export the server serves (its pseudo
        root, id 0, left out)."""
        body = self._call("ShowExports", "", ())
        return {int(row[0]): str(row[1]) for row in body[1] if row[0] != 0}

    def remove(self, export_id: int) -> None:
        self._call("RemoveExport", "q", (int(export_id),))
