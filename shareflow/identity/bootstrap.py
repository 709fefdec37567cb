"""What ``shareflow run`` prepares for the built-in identity on its first
start: the Fernet key repository, an ``admin`` user (admin role on project
``admin``) whose password goes to ``<state_dir>/admin.password`` (0600), and
``<state_dir>/clouds.yaml`` with a cloud ``shareflow`` that the OpenStack
clients use as is (``OS_CLIENT_CONFIG_FILE=var/clouds.yaml openstack --os-cloud
shareflow share list``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from shareflow.config import Config
from shareflow.services.identity import DOMAIN_NAME, IdentityService
from shareflow.system.atomic_file import write_atomic

CLOUD = "shareflow"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
PASSWORD_BYTES = 18


@dataclass(frozen=True)
class AdminLogin:
    password: str | None  # None: the user existed and its password file is gone
    created: bool
    password_file: Path
    clouds_file: Path


def api_url(config: Config) -> str:
    return config.api.public_url or f"http://{config.api.host}:{config.api.port}"


def clouds_yaml(config: Config, password: str) -> str:
    # JSON strings are valid YAML scalars: no quoting rules to get wrong.
    import json

    q = json.dumps
    return f"""# Written by `shareflow run`: the OpenStack clients' configuration for this shareflow.
#   export OS_CLIENT_CONFIG_FILE={config.state_dir / 'clouds.yaml'}
#   openstack --os-cloud {CLOUD} share list
clouds:
  {CLOUD}:
    auth_type: password
    auth:
      auth_url: {q(api_url(config) + '/identity/v3')}
      username: {q(ADMIN_USER)}
      password: {q(password)}
      project_name: {q(ADMIN_PROJECT)}
      user_domain_name: {q(DOMAIN_NAME)}
      project_domain_name: {q(DOMAIN_NAME)}
    region_name: {q(config.identity.region)}
    interface: public
    identity_api_version: 3
"""


def prepare(config: Config, identity: IdentityService) -> AdminLogin:
    identity.keys.ensure()
    password_file = config.state_dir / "admin.password"
    clouds_file = config.state_dir / "clouds.yaml"
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    created = identity.bootstrap_admin(password, user=ADMIN_USER, project=ADMIN_PROJECT)
    if created:
        write_atomic(password_file, password + "\n", mode=0o600)
    elif password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = None
    if password is not None:
        # Rewritten at every start: the API's address may have changed.
        write_atomic(clouds_file, clouds_yaml(config, password), mode=0o600)
    return AdminLogin(password=password, created=created, password_file=password_file, clouds_file=clouds_file)
