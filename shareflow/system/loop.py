"""Loop devices: which image backs which device, read from sysfs.

A loop device is a per-host resource (every image pool and every mounted
share image holds one), so callers count them by what backs them rather than
trust a name: ``/sys/block/loopN/loop/backing_file`` says which file a device
serves, ``/sys/dev/block/MAJ:MIN`` leads from a mounted filesystem's device
number to its loop device. Reading these is a few small files, no command.
"""

from __future__ import annotations

import os
from pathlib import Path

from shareflow.exceptions import CommandError
from shareflow.system.process import run

SYS_BLOCK = Path("/sys/block")
SYS_DEV_BLOCK = Path("/sys/dev/block")
_DELETED = " (deleted)"


def _backing(sys_dir: Path) -> str | None:
    try:
        text = (sys_dir / "loop" / "backing_file").read_text().rstrip("\n")
    except OSError:  # not a loop device, or not attached
        return None
    return text.removesuffix(_DELETED) or None


def attached() -> dict[str, str]:
    """``/dev/loopN`` -> the file it serves, for every attached loop device."""
    found = {}
    try:
        names = os.listdir(SYS_BLOCK)
    except FileNotFoundError:
        return found
    for name in names:
        if name.startswith("loop"):
            backing = _backing(SYS_BLOCK / name)
            if backing is not None:
                found[f"/dev/{name}"] = backing
    return found


def devices_under(directory: str | os.PathLike) -> dict[str, str]:
    """Attached loop devices whose file lies below ``directory``."""
    prefix = os.path.realpath(os.fspath(directory)).rstrip("/") + "/"
    return {dev: f for dev, f in attached().items() if f.startswith(prefix)}


def devices_of(image: str | os.PathLike) -> list[str]:
    """Loop devices attached to ``image``."""
    real = os.path.realpath(os.fspath(image))
    return sorted(dev for dev, f in attached().items() if f == real)


def device_of_mount(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(device, backing file)`` of the loop device whose filesystem is
    mounted on ``path``, or None when ``path`` is not on a loop device."""
    st = os.stat(path)
    sys_dir = SYS_DEV_BLOCK / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    backing = _backing(sys_dir)
    if backing is None:
        return None
    return f"/dev/{os.path.basename(os.path.realpath(sys_dir))}", backing


def refresh_size(device: str, *, timeout: float) -> None:
    """Make the device's size its file's again (after the file grew)."""
    run(["losetup", "--set-capacity", device], timeout=timeout)


def detach(device: str, *, image: str | os.PathLike | None = None, timeout: float) -> None:
    """Detach ``device``. With ``image``: only while it still serves that
    file, and a device that stopped serving it meanwhile (an autoclear
    device whose last user just went) is not an error."""
    if image is not None and device not in devices_of(image):
        return
    try:
        run(["losetup", "--detach", device], timeout=timeout)
    except CommandError:
        if image is None or device in devices_of(image):
            raise
