"""gunicorn's logger, with an access log line built from what its format uses.

gunicorn builds every atom it knows for every request before formatting the
line: each request header, each response header and the whole WSGI environ
(~40 entries) copied into dicts, then copied again to escape quotes, and a
strftime - for a format (``shareflow.api.server.ACCESS_LOG_FORMAT``) that
reads six of them. Under clients polling every 20 ms that was ~15 % of an
API worker's Python time (py-spy, GIL samples), more than the statement
that answers the poll. Here only the atoms the configured format names are
computed, with gunicorn's own meanings and escaping, so the line is the same.
"""

from __future__ import annotations

import os
import re

from gunicorn import glogging

_NAME = re.compile(r"%\(([^)]+)\)")


def _request_line(environ: dict) -> str:
    return f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"


#: gunicorn's atoms (``glogging.Logger.atoms``), each computed on its own.
_ATOMS = {
    "h": lambda log, resp, req, environ, rt: environ.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, req, environ, rt: "-",
    "u": lambda log, resp, req, environ, rt: log._get_user(environ) or "-",
    "t": lambda log, resp, req, environ, rt: log.now(),
    "r": lambda log, resp, req, environ, rt: _request_line(environ),
    "s": lambda log, resp, req, environ, rt: (resp.status.split(None, 1)[0]
                                              if isinstance(resp.status, str) else resp.status),
    "m": lambda log, resp, req, environ, rt: environ.get("REQUEST_METHOD"),
    "U": lambda log, resp, req, environ, rt: environ.get("PATH_INFO"),
    "q": lambda log, resp, req, environ, rt: environ.get("QUERY_STRING"),
    "H": lambda log, resp, req, environ, rt: environ.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, req, environ, rt: getattr(resp, "sent", None) is not None and str(resp.sent) or "-",
    "B": lambda log, resp, req, environ, rt: getattr(resp, "sent", None),
    "f": lambda log, resp, req, environ, rt: environ.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, req, environ, rt: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, req, environ, rt: rt.seconds,
    "D": lambda log, resp, req, environ, rt: rt.seconds * 1000000 + rt.microseconds,
    "M": lambda log, resp, req, environ, rt: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda log, resp, req, environ, rt: "%d.%06d" % (rt.seconds, rt.microseconds),
    "p": lambda log, resp, req, environ, rt: "<%s>" % os.getpid(),
}


def _pairs(headers):
    return headers.items() if hasattr(headers, "items") else headers


def _header(headers, name: str):
    """The last value of header ``name`` (lower case), as gunicorn's dict of them keeps it."""
    found = None
    for key, value in _pairs(headers):
        if key.lower() == name:
            found = value
    return found


class AccessLogger(glogging.Logger):
    def atoms(self, resp, req, environ, request_time):
        names = self._names()
        if names is None:  # a format this class does not know how to read: gunicorn's way
            return super().atoms(resp, req, environ, request_time)
        atoms = {}
        for name in names:
            if name in _ATOMS:
                atoms[name] = _ATOMS[name](self, resp, req, environ, request_time)
                continue
            key, kind = name[1:-2].lower(), name[-1]
            if kind == "i":
                value = _header(req.headers if hasattr(req, "headers") else req, key)
            elif kind == "o":
                value = _header(resp.headers, key)
            else:
                value = next((v for k, v in environ.items() if k.lower() == key), None)
            if value is not None:
                atoms[name.lower()] = value
        return atoms

    def _names(self) -> list[str] | None:
        """The atoms the access log format names, once per format."""
        fmt = self.cfg.access_log_format
        cached = getattr(self, "_names_of", None)
        if cached is not None and cached[0] == fmt:
            return cached[1]
        names: list[str] | None = []
        for name in _NAME.findall(fmt):
            if not (name in _ATOMS or re.fullmatch(r"\{[^}]+\}[ioe]", name)):
                names = None
                break
            names.append(name)
        self._names_of = (fmt, names)
        return names
