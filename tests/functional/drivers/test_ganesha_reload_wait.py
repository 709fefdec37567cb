"""reload() returns only once Ganesha has logged everything about that
reload, including the configuration errors its signal thread reports after
"Reread exports complete" - without waiting for the log to go quiet."""

from __future__ import annotations

from shareflow.drivers.export import ganesha_server as gs
from shareflow.system.atomic_file import write_atomic

UNKNOWN_KEY = """
EXPORT {{
    Export_Id = 101;
    Path = "{path}";
    Pseudo = "/shares/x";
    Access_Type = None;
    Bogus_Parameter = 7;
    FSAL {{ Name = VFS; }}
}}
"""


def test_the_signal_thread_is_found(ganesha_server):
    assert gs._sigwait_thread(ganesha_server.pid()) is not None


def test_errors_logged_after_the_mark_are_in_the_log_when_reload_returns(ganesha_server, btrfs_config):
    for _ in range(20):
        write_atomic(ganesha_server.exports_path, UNKNOWN_KEY.format(path=btrfs_config.mount_point))
        offset = gs._size(ganesha_server.log_path)
        ganesha_server.reload()  # an unknown key is a warning, not an error
        logged = gs._read_from(ganesha_server.log_path, offset)
        assert gs.RELOAD_MARK in logged
        assert "Unknown parameter (Bogus_Parameter)" in logged.split(gs.RELOAD_MARK, 1)[1]
