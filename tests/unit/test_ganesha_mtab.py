"""The mount table shareflow writes for an NFS-Ganesha of its own
(``ganesha_mtab``) and the start helper's pure parts (``own_mtab``); the
table read by a real Ganesha is in tests/functional/drivers/test_ganesha_own_mtab.py."""

from __future__ import annotations

import os
import threading

import pytest

from shareflow.drivers.export import ganesha_mtab as gm
from shareflow.exceptions import ExportError
from shareflow.system import own_mtab

#: The root filesystem, in every table: the parent of every export's.
ROOT = "shareflow / ext4 rw"


def test_a_plain_directory_is_listed_as_the_mount_it_lives_on(tmp_path):
    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    root = gm.mount_root(str(d))
    assert str(d).startswith(root.rstrip("/") + "/") or root == "/"
    assert os.stat(root).st_dev == os.stat(d).st_dev
    parent = os.path.dirname(root)
    assert root == "/" or os.stat(parent).st_dev != os.stat(d).st_dev


def test_lines_escape_what_getmntent_decodes(tmp_path, monkeypatch):
    monkeypatch.setattr(gm, "mount_root", lambda p: "/x y/t\tz\\w")
    monkeypatch.setattr(gm, "fs_type", lambda p: "btrfs")
    assert gm.line_for("/anything") == "shareflow /x\\040y/t\\011z\\134w btrfs rw\n"


def test_lines_give_the_type_a_mount_table_would(tmp_path):
    """Ganesha refuses to export some types (proc, sysfs, devtmpfs...) by name."""
    assert [gm.fs_type(p) for p in ("/proc", "/sys", "/dev")] == ["proc", "sysfs", "devtmpfs"]
    assert gm.fs_type(str(tmp_path)) == gm.fs_type(gm.mount_root(str(tmp_path)))
    assert own_mtab._unescape("/x\\040y/t\\011z\\134w") == "/x y/t\tz\\w"


def test_the_table_holds_the_start_set_then_only_exports_being_created(tmp_path, monkeypatch):
    monkeypatch.setattr(gm, "mount_root", lambda p: p)
    monkeypatch.setattr(gm, "fs_type", lambda p: "ext4" if p == "/" else "shareflow")
    table = gm.MountTable(tmp_path, timeout=5)
    (tmp_path / gm.ENTRIES).mkdir()
    (tmp_path / gm.ENTRIES / "left-by-a-dead-conductor").write_text("shareflow /old shareflow rw\n")
    table.prepare(["/e/1", "/e/2", "/e/1"])
    assert os.readlink(table.link) == str(table.path)
    assert table.lines() == [ROOT, "shareflow /e/1 shareflow rw", "shareflow /e/2 shareflow rw"]
    with table.listing("s3", "/e/3"):  # an add while the server still starts
        assert table.lines()[-1] == "shareflow /e/3 shareflow rw" and len(table.lines()) == 4
    table.started()
    assert table.lines() == [ROOT]
    with table.listing("s4", "/e/4"):
        with table.listing("s5", "/e/5"):  # two at once: both listed
            assert table.lines() == [ROOT, "shareflow /e/4 shareflow rw", "shareflow /e/5 shareflow rw"]
        assert table.lines() == [ROOT, "shareflow /e/4 shareflow rw"]
    assert table.lines() == [ROOT]
    assert sorted(os.listdir(tmp_path / gm.ENTRIES)) == []


def test_concurrent_listings_each_find_their_line(tmp_path, monkeypatch):
    monkeypatch.setattr(gm, "mount_root", lambda p: p)
    monkeypatch.setattr(gm, "fs_type", lambda p: "ext4" if p == "/" else "shareflow")
    table = gm.MountTable(tmp_path, timeout=5)
    table.prepare([])
    table.started()
    missing = []
    barrier = threading.Barrier(8)

    def one(i):
        barrier.wait()
        for _ in range(20):
            with table.listing(f"s{i}", f"/e/{i}"):
                if f"shareflow /e/{i} shareflow rw" not in table.lines():
                    missing.append(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert missing == [] and table.lines() == [ROOT]


def test_a_path_that_is_gone_fails_its_export_clearly(tmp_path):
    table = gm.MountTable(tmp_path, timeout=5)
    with pytest.raises(ExportError, match="cannot export"):
        with table.listing("s", str(tmp_path / "missing")):
            pass


def test_who_reads_the_table(tmp_path):
    table = gm.MountTable(tmp_path, timeout=5)
    assert not table.read_by(os.getpid())  # this process reads the host's
    assert gm.visible_to(os.getpid(), str(tmp_path))
    assert not gm.visible_to(os.getpid(), str(tmp_path / "missing"))


@pytest.mark.parametrize("mount_point,path,related", [
    ("/", "/a/b", True), ("/a/b", "/a/b", True), ("/a/b/c", "/a/b", True),
    ("/a/bc", "/a/b", False), ("/x", "/a/b", False),
])
def test_which_mounts_the_helper_keeps(mount_point, path, related):
    assert own_mtab._related(mount_point, path) is related


def test_the_helper_refuses_a_bad_command_line(capsys):
    assert own_mtab.main(["link"]) == 2
    assert own_mtab.main(["link", "--keep", "/x", "prog"]) == 2
    assert "usage" in capsys.readouterr().err
