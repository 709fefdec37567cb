"""Loopback port helpers for private servers (tests, ``shareflow run``)."""

from __future__ import annotations

import contextlib
import errno
import socket

__all__ = ["free_port", "free_ports", "port_in_use"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The kernel picks it (bind to port 0) and the socket is closed again, so
    another process could take it before the caller binds; callers that start a
    server on it must still handle "address in use" (for private test servers
    the window is tiny and the ephemeral range is large).
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports as :func:`free_port` finds one: the sockets
    are held until all are chosen, so no two of them can be the same port
    (separate calls of :func:`free_port` may return one port twice)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            s = held.enter_context(socket.socket(_family(host), socket.SOCK_STREAM))
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports


def port_in_use(host: str, port: int) -> bool:
    """True when a TCP socket is already bound to ``host:port``.

    Checked by binding (with SO_REUSEADDR, like servers do, so sockets of a
    server that just exited, left in TIME_WAIT, do not count as "in use").
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
        return False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
