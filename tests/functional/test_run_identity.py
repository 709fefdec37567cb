"""``shareflow run`` (what ``make run`` runs) with the shipped configuration's
built-in identity: it prints the admin user's password, writes it to
``var/admin.password`` (0600) and ``var/clouds.yaml``, with which
``openstack --os-cloud shareflow share list`` works as is; a restart keeps
the user and its password. The README's first share (``openstack share
create NFS 1``, the default type) becomes available, also after a restart
that finds the default type an earlier version made."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from tests.fixtures.run_service import RunService


def _openstack(clouds, home, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(HOME=str(home), OS_CLIENT_CONFIG_FILE=str(clouds))
    return subprocess.run([sys.executable, "-m", "openstackclient.shell", "--os-cloud", "shareflow", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def _share_list(clouds, home) -> subprocess.CompletedProcess:
    return _openstack(clouds, home, "share", "list", "-f", "value")


def _read_over_nfs(service, clouds, home, name) -> None:
    """The README's next steps: allow 127.0.0.1, then read the export with
    libnfs (NFSv4). Its NFS-Ganesha reads its own mount table (etc/'s
    ``mount_table = "own"``): the share, mounted after Ganesha started,
    must reach Ganesha's mount namespace through the shared exports mount."""
    allowed = _openstack(clouds, home, "share", "access", "create", name, "ip", "127.0.0.1", "--wait")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    path = _openstack(clouds, home, "share", "export", "location", "list", name, "-f", "value", "-c", "Path")
    assert path.returncode == 0, path.stderr
    export = path.stdout.strip().split(":", 1)[1]
    listed = subprocess.run(["nfs-ls", f"nfs://127.0.0.1{export}?version=4&nfsport={service.nfs_port}"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr


def _create_and_wait(clouds, home, name) -> str:
    """``openstack share create NFS 1 --name NAME --wait``: the client's own
    wait, which fails on ``error``; returns the share's status."""
    created = _openstack(clouds, home, "share", "create", "NFS", "1", "--name", name, "--wait")
    assert created.returncode == 0, created.stdout + created.stderr
    shown = _openstack(clouds, home, "share", "show", name, "-f", "value", "-c", "status")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def test_run_makes_the_admin_user_and_the_readmes_first_share_with_the_openstack_client(tmp_path):
    service = RunService(tmp_path / "run", pool_gb=4)
    with service:
        password_file = service.state_dir / "admin.password"
        clouds = service.state_dir / "clouds.yaml"
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert f"admin password: {password}" in service.output()
        assert f"/identity/v3" in clouds.read_text() and password in clouds.read_text()
        assert _create_and_wait(clouds, tmp_path, "demo") == "available"
        _read_over_nfs(service, clouds, tmp_path, "demo")
        listed = _share_list(clouds, tmp_path)
        assert listed.returncode == 0 and " demo " in f" {listed.stdout} ", listed.stdout + listed.stderr
        # What shareflow run made before: snapshot_support=False, which no
        # btrfs pool (snapshot_support=True) matches; the next start mends it.
        for args in (("set", "default", "--extra-specs", "snapshot_support=False"),
                     ("unset", "default", "create_share_from_snapshot_support", "revert_to_snapshot_support")):
            earlier = _openstack(clouds, tmp_path, "share", "type", *args)
            assert earlier.returncode == 0, earlier.stderr
        service.stop()
        service.start()
        assert password_file.read_text().strip() == password
        specs = _openstack(clouds, tmp_path, "share", "type", "show", "default", "-f", "json")
        assert '"snapshot_support": "True"' in specs.stdout.replace("'", '"'), specs.stdout
        assert _create_and_wait(clouds, tmp_path, "demo2") == "available"
