"""Parsing /proc/self/mountinfo and btrfs output: pure, on fixed text."""

from shareflow.system import btrfs, mounts

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:30 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
44 22 0:39 / /srv/pool rw,relatime shared:20 master:3 - btrfs /dev/loop3 rw,space_cache=v2,subvolid=5,subvol=/
45 22 0:39 /shares/0b2c1d3e-0000-4000-8000-000000000001 /srv/exports/0b2c1d3e-0000-4000-8000-000000000001 rw,nosuid,nodev - btrfs /dev/loop3 rw,subvolid=256,subvol=/shares/0b2c1d3e-0000-4000-8000-000000000001
46 22 0:41 / /mnt/with\\040space rw - tmpfs tmp\\011fs rw
47 45 0:42 / /srv/exports/0b2c1d3e-0000-4000-8000-000000000001/inner rw - tmpfs tmpfs rw
48 22 0:39 /other /srv/pool rw - btrfs /dev/loop7 rw
this line is garbage
49 22 0:50 / /broken
"""


def test_parse_fields():
    parsed = mounts.parse_mountinfo(MOUNTINFO)
    assert len(parsed) == 7  # garbage and truncated lines are skipped
    sub = parsed[3]
    assert sub.mount_id == 45 and sub.parent_id == 22
    assert sub.root == "/shares/0b2c1d3e-0000-4000-8000-000000000001"
    assert sub.mount_point == "/srv/exports/0b2c1d3e-0000-4000-8000-000000000001"
    assert sub.options == "rw,nosuid,nodev"
    assert (sub.fstype, sub.source) == ("btrfs", "/dev/loop3")
    assert "subvolid=256" in sub.super_options


def test_optional_fields_do_not_shift_columns():
    pool = mounts.parse_mountinfo(MOUNTINFO)[2]  # has "shared:20 master:3"
    assert (pool.fstype, pool.source, pool.root) == ("btrfs", "/dev/loop3", "/")


def test_octal_escapes_are_decoded():
    m = mounts.parse_mountinfo(MOUNTINFO)[4]
    assert m.mount_point == "/mnt/with space"
    assert m.source == "tmp\tfs"


def test_is_mountpoint_and_source_of():
    parsed = mounts.parse_mountinfo(MOUNTINFO)
    assert mounts.is_mountpoint("/srv/pool", parsed)
    assert mounts.is_mountpoint("/srv/pool/", parsed)  # normalised
    assert not mounts.is_mountpoint("/srv", parsed)
    assert not mounts.is_mountpoint("/srv/pool/shares", parsed)
    assert mounts.source_of("/mnt/with space", parsed) == "tmp\tfs"
    assert mounts.source_of("/nowhere", parsed) is None


def test_stacked_mounts_the_last_one_is_visible():
    parsed = mounts.parse_mountinfo(MOUNTINFO)
    visible = mounts.find_mount("/srv/pool", parsed)
    assert (visible.mount_id, visible.source, visible.root) == (48, "/dev/loop7", "/other")


def test_mounts_under_is_strictly_below_and_newest_first():
    parsed = mounts.parse_mountinfo(MOUNTINFO)
    below = [m.mount_id for m in mounts.mounts_under("/srv/exports", parsed)]
    assert below == [47, 45]  # the inner mount must go first
    assert mounts.mounts_under("/srv/exports/0b2c1d3e-0000-4000-8000-000000000001/inner", parsed) == []
    # A sibling with a common name prefix is not "under".
    assert mounts.mounts_under("/srv/pool", parsed) == []
    assert [m.mount_id for m in mounts.mounts_under("/srv/po", parsed)] == []


def test_real_mountinfo_has_root():
    assert mounts.is_mountpoint("/")


QGROUP_SHOW = """\
Qgroupid    Referenced    Exclusive   Path 
--------    ----------    ---------   ---- 
0/5              16384        16384   <toplevel>
0/256       1073725440   1073725440   shares/0b2c1d3e-0000-4000-8000-000000000001
0/257            16384        16384   <stale>
1/100                0            0   
"""


def test_parse_qgroup_show():
    groups = btrfs.parse_qgroup_show(QGROUP_SHOW)
    assert [(g.level, g.id) for g in groups] == [(0, 5), (0, 256), (0, 257), (1, 100)]
    assert groups[0].path == "<toplevel>"
    assert groups[1].path == "shares/0b2c1d3e-0000-4000-8000-000000000001"
    assert groups[1].referenced == 1073725440
    assert groups[2].path is None  # stale: its subvolume is gone
    assert groups[3].path is None
