"""``[identity]``: named defaults, paths under the state directory, and every
wrong value refused at start-up with the setting's name."""

from pathlib import Path

import pytest

from shareflow import config
from shareflow.exceptions import ConfigError


def parse(identity: dict | None = None, auth: dict | None = None):
    data = {"state_dir": "/srv/sf"}
    if identity is not None:
        data["identity"] = identity
    if auth is not None:
        data["auth"] = auth
    return config.parse(data, Path("/etc/sf/shareflow.toml"))


def test_defaults():
    c = parse()
    i = c.identity
    assert i.key_repository == Path("/srv/sf/identity-keys")
    assert i.token_expiration == config.DEFAULT_TOKEN_EXPIRATION == 3600
    assert i.region == "RegionOne"
    assert (i.public_url, i.internal_url, i.admin_url) == ("", "", "")
    assert i.max_active_keys == config.DEFAULT_MAX_ACTIVE_KEYS
    assert i.lockout_failure_attempts == config.DEFAULT_LOCKOUT_FAILURE_ATTEMPTS
    assert c.auth.strategy == "tokens"
    assert parse(auth={"strategy": "identity"}).auth.strategy == "identity"


def test_settings():
    i = parse({"token_expiration": 600, "region": "Lab-1", "public_url": "https://share.example.com:8786/",
               "key_repository": "keys", "max_active_keys": 5, "lockout_failure_attempts": 3,
               "lockout_duration": 5}).identity
    assert (i.token_expiration, i.region, i.public_url) == (600, "Lab-1", "https://share.example.com:8786")
    assert i.key_repository == Path("/etc/sf/keys")
    assert (i.max_active_keys, i.lockout_failure_attempts, i.lockout_duration) == (5, 3, 5.0)


@pytest.mark.parametrize("settings, named", [
    ({"token_expiration": 10}, "identity.token_expiration"),
    ({"token_expiration": "1h"}, "identity.token_expiration"),
    ({"region": "two words"}, "identity.region"),
    ({"public_url": "share.example.com"}, "identity.public_url"),
    ({"admin_url": "ftp://x"}, "identity.admin_url"),
    ({"max_active_keys": 1}, "identity.max_active_keys"),
    ({"lockout_failure_attempts": 0}, "identity.lockout_failure_attempts"),
    ({"lockout_duration": 0}, "identity.lockout_duration"),
    ({"tokn_expiration": 60}, "identity: unknown setting"),
])
def test_wrong_values_are_refused_by_name(settings, named):
    with pytest.raises(ConfigError, match=named):
        parse(settings)


def test_the_shipped_configuration_uses_the_identity():
    c = config.load(Path(__file__).parents[2] / "etc" / "shareflow.toml")
    assert c.auth.strategy == "identity"
