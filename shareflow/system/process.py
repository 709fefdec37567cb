"""The single boundary between shareflow and external commands.

Every command the service runs (btrfs, mount, ip, nsenter, ...) goes through
:func:`run`, so there is exactly one place that decides how a command is
started (never through a shell: arguments cannot be re-interpreted), how long
it may take, and how its failure becomes a :class:`CommandError`.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess

from shareflow.exceptions import CommandError

log = logging.getLogger(__name__)

#: Tools' messages are parsed in a few places (``target is busy``, ``ERROR:``):
#: pin the locale so they do not change with the operator's environment.
_ENV_OVERRIDES = {"LC_ALL": "C", "LANG": "C"}


def _decode(data: bytes | None) -> str:
    return data.decode("utf-8", errors="replace") if data else ""


def run(
    argv: list[str],
    *,
    timeout: float,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``argv`` (no shell) and return its result with text ``stdout``/``stderr``.

    Raises :class:`CommandError` when the binary is missing or not executable,
    when it runs longer than ``timeout`` seconds (it is killed), and - if
    ``check`` - when it exits non-zero.
    """
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("run() needs a command")
    log.debug("run: %s", shlex.join(argv))
    env = {**os.environ, **_ENV_OVERRIDES}
    try:
        # Bytes in, bytes out: ``input`` is bytes by contract, and decoding
        # ourselves with errors="replace" means odd output never raises here.
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except FileNotFoundError as e:
        raise CommandError(argv, 127, f"command not found: {e.filename or argv[0]}") from e
    except PermissionError as e:
        raise CommandError(argv, 126, f"cannot execute: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise CommandError(argv, None, f"no result after {timeout:g} s {_decode(e.stderr)}") from e
    except OSError as e:
        raise CommandError(argv, 126, str(e)) from e
    result = subprocess.CompletedProcess(argv, proc.returncode, _decode(proc.stdout), _decode(proc.stderr))
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stderr or result.stdout)
    return result
