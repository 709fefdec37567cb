"""The API's access logger writes gunicorn's own access lines (it only
skips building the atoms its format does not read)."""

from __future__ import annotations

import datetime
import io
import logging
import types

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from shareflow.api.access_log import AccessLogger
from shareflow.api.server import ACCESS_LOG_FORMAT

ENVIRON = {
    "REQUEST_METHOD": "POST", "RAW_URI": '/v2/shares/x/action?a="b"', "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1", "PATH_INFO": "/v2/shares/x/action", "QUERY_STRING": 'a="b"',
    "HTTP_USER_AGENT": "python-manilaclient", "HTTP_X_OPENSTACK_MANILA_API_VERSION": "2.65",
    "wsgi.multithread": True, "SERVER_NAME": "127.0.0.1",
}
REQUEST = types.SimpleNamespace(headers=[("HOST", "127.0.0.1:8786"), ("USER-AGENT", "python-manilaclient"),
                                         ("X-Trace", "one"), ("X-Trace", "two")])
FORMATS = [
    ACCESS_LOG_FORMAT,
    '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s %(L)s %(T)s %(m)s %(U)s %(q)s %(H)s %(p)s',
    "%({x-trace}i)s %({HOST}i)s %({content-type}o)s %({Missing}o)s %({server_name}e)s %({nothing}e)s",
    "%(t)s %(unknown)s %(s)s",  # an atom this class does not know: gunicorn's way
]


def _lines(cls, fmt: str, response) -> list[str]:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    log = cls(cfg)
    log.now = lambda: "[01/Dec/2026:05:00:00 +0000]"
    stream = io.StringIO()
    # gunicorn's access logger is process-wide ("gunicorn.access"): only this stream.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.access_log.handlers = [handler]
    log.access_log.propagate = False
    for elapsed in (datetime.timedelta(microseconds=1500), datetime.timedelta(seconds=2, microseconds=7)):
        log.access(response, REQUEST, ENVIRON, elapsed)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sent", [1234, None])
def test_the_lines_are_gunicorns(fmt, sent):
    response = types.SimpleNamespace(status="202 Accepted", sent=sent, headers=[
        ("Content-Type", "application/json"), ("x-openstack-request-id", 'req-"quoted"')])
    ours = _lines(AccessLogger, fmt, response)
    assert ours == _lines(glogging.Logger, fmt, response)
    assert len(ours) == 2 and all(line.strip() for line in ours)
    if fmt == ACCESS_LOG_FORMAT:
        assert ours == [f'127.0.0.1 "POST /v2/shares/x/action?a=\\"b\\" HTTP/1.1" 202 {sent} {ms}ms req-\\"quoted\\"'
                        for ms in (1, 2000)]


def test_only_the_formats_atoms_are_built():
    cfg = Config()
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    response = types.SimpleNamespace(status="200 OK", sent=10, headers=[("x-openstack-request-id", "req-1")])
    atoms = AccessLogger(cfg).atoms(response, REQUEST, ENVIRON, datetime.timedelta(microseconds=10))
    assert atoms == {"h": "127.0.0.1", "r": 'POST /v2/shares/x/action?a="b" HTTP/1.1', "s": "200", "B": 10,
                     "M": 0, "{x-openstack-request-id}o": "req-1"}
