"""``shareflow-api``: validate the configuration, then serve the API with gunicorn.

The configuration is checked here, once, before any worker starts: a broken
file is one clear line on stderr and exit status 2, not N workers crashing in
a loop. Workers load it again themselves (``shareflow.api.wsgi``), from the
same path, after the fork.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gunicorn.app.base import BaseApplication

from shareflow import config as config_module
from shareflow.config import Config
from shareflow.logs import setup_logging

LOG = logging.getLogger("shareflow.api")

#: Seconds a worker gets to finish its requests on SIGTERM/SIGHUP.
GRACEFUL_TIMEOUT = 30
#: A worker silent for this long is killed and replaced (a hung request).
WORKER_TIMEOUT = 120
#: Seconds an idle keep-alive connection is kept open. Clients (requests,
#: keystoneauth) reuse pooled connections; with gunicorn's default of 2 s a
#: reused connection can be closed by the server just as a request goes out,
#: and the client gets "connection aborted" for a request the server never saw.
KEEPALIVE = 75
#: Threads per worker: requests mostly wait on the database and ZooKeeper.
THREADS = 4
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms %({x-openstack-request-id}o)s'


def gunicorn_options(config: Config) -> dict:
    host = config.api.host
    bind = f"[{host}]:{config.api.port}" if ":" in host else f"{host}:{config.api.port}"
    return {
        "bind": [bind],
        "workers": config.api.workers,
        "worker_class": "gthread",
        "threads": THREADS,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "timeout": WORKER_TIMEOUT,
        "keepalive": KEEPALIVE,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        # The same lines, built from the atoms the format reads only.
        "logger_class": "shareflow.api.access_log.AccessLogger",
        "proc_name": "shareflow-api",
        # Build the app in each worker, after the fork (no shared connections).
        "preload_app": False,
    }


class ApiServer(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from shareflow.api.wsgi import application

        return application


def check(config: Config) -> None:
    """Start-up warnings an operator should see once, not per worker."""
    if config.auth.strategy == "noauth":
        LOG.warning("auth.strategy is 'noauth': every caller is trusted as an admin. "
                    "Use it for local development only.")
    elif not config.auth.tokens_file.exists():
        LOG.warning("no tokens file at %s yet: every request will be refused until "
                    "`shareflow token issue --project P` creates one", config.auth.tokens_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shareflow-api", description="serve the Manila-compatible API")
    parser.add_argument(
        "--config", default=None,
        help=f"configuration file (default: ${config_module.ENV_VAR}, else {config_module.DEFAULT_PATH})",
    )
    args = parser.parse_args(argv)
    setup_logging("api")
    config = config_module.load_or_exit("shareflow-api", args.config)
    check(config)
    # Workers read the very file validated here.
    os.environ[config_module.ENV_VAR] = str(config.path)
    ApiServer(gunicorn_options(config)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
