"""WSGI entry point for gunicorn: ``shareflow.api.wsgi:application``.

The configuration (``$SHAREFLOW_CONFIG``) is loaded, and the app with its
database engine built, on a worker's first request - never at import - so
nothing that holds a connection or a thread exists before gunicorn forks.
(ZooKeeper is connected even later, on the first job posted.)
"""

from __future__ import annotations

import threading

import falcon

from shareflow import config as config_module

_lock = threading.Lock()
_app: falcon.App | None = None


def get_app() -> falcon.App:
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                from shareflow.api.app import create_app

                _app = create_app(config_module.load())
    return _app


def application(environ, start_response):
    return get_app()(environ, start_response)
