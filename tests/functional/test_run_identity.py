"""``shareflow run`` (what ``make run`` runs) with the shipped configuration's
built-in identity: it prints the admin user's password, writes it to
``var/admin.password`` (0600) and ``var/clouds.yaml``, with which
``openstack --os-cloud shareflow share list`` works as is; a restart keeps
the user and its password."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from tests.fixtures.run_service import RunService


def _share_list(clouds, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(HOME=str(home), OS_CLIENT_CONFIG_FILE=str(clouds))
    return subprocess.run([sys.executable, "-m", "openstackclient.shell", "--os-cloud", "shareflow",
                           "share", "list", "-f", "value"], capture_output=True, text=True, timeout=120, env=env)


def test_run_creates_the_admin_user_and_a_clouds_yaml_that_openstack_uses(tmp_path):
    service = RunService(tmp_path / "run", pool_gb=1)
    with service:
        password_file = service.state_dir / "admin.password"
        clouds = service.state_dir / "clouds.yaml"
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert f"admin password: {password}" in service.output()
        assert f"/identity/v3" in clouds.read_text() and password in clouds.read_text()
        listed = _share_list(clouds, tmp_path)
        assert listed.returncode == 0, listed.stderr
        service.stop()
        service.start()
        assert password_file.read_text().strip() == password
        assert _share_list(clouds, tmp_path).returncode == 0
