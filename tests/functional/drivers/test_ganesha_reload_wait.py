"""reload() returns only once Ganesha has logged everything about that
reload, including the configuration errors its signal thread reports after
"Reread exports complete" - without waiting for the log to go quiet."""

from __future__ import annotations

import pytest

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


GOOD_AND_UNPARSABLE = """
EXPORT {{
    Export_Id = 100;
    Path = "{path}";
    Pseudo = "/shares/good";
    Access_Type = None;
    Protocols = 4;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = {client}; Access_Type = RO; Protocols = 4; }}
}}
EXPORT {{
    Export_Id = 101;
    Path = "{path}";
    Pseudo = "/shares/bad";
    Access_Type = None;
    Protocols = 4;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = fe80::1%lo; Access_Type = RW; Protocols = 4; }}
}}
"""


def test_a_file_ganesha_cannot_parse_is_reported_at_once(ganesha_server, btrfs_config, nfs_clients):
    """Ganesha refuses such a file whole and never logs RELOAD_MARK; reload()
    reports the refusal as soon as Ganesha has, instead of waiting out its
    timeout (with the server's exports lock held, in the export driver)."""
    client = nfs_clients[0]
    good = UNKNOWN_KEY.format(path=btrfs_config.mount_point).replace(
        "Bogus_Parameter = 7;", f"CLIENT {{ Clients = {client.address}; Access_Type = RO; }}")
    write_atomic(ganesha_server.exports_path, good)
    ganesha_server.reload()
    assert client.ls("/shares/x").returncode == 0
    # Long enough that waiting it out would be its own failure ("did not finish").
    ganesha_server.timeout = 600
    write_atomic(ganesha_server.exports_path,
                 GOOD_AND_UNPARSABLE.format(path=btrfs_config.mount_point, client=client.address))
    with pytest.raises(gs.ConfigRefused) as e:
        ganesha_server.reload()
    assert "refused the configuration" in str(e.value) and "Unexpected character (%)" in str(e.value)
    assert e.value.user_message == gs.REFUSED_MESSAGE
    # Ganesha kept what it served before: the old export, none of the new ones.
    assert client.ls("/shares/x").returncode == 0
    assert client.ls("/shares/good").returncode != 0
