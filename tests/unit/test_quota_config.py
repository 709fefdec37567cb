"""The ``[quotas]`` section: Manila's defaults, validated like every setting."""

from pathlib import Path

import pytest

from shareflow import config
from shareflow.exceptions import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "shareflow.toml"
    p.write_text(text)
    return p


def test_defaults_are_manilas(tmp_path):
    c = config.load(write(tmp_path, ""))
    assert c.quotas.as_dict() == {"shares": 50, "gigabytes": 1000, "snapshots": 50, "snapshot_gigabytes": 1000}
    assert (config.DEFAULT_QUOTA_SHARES, config.DEFAULT_QUOTA_GIGABYTES, config.DEFAULT_QUOTA_SNAPSHOTS,
            config.DEFAULT_QUOTA_SNAPSHOT_GIGABYTES) == (50, 1000, 50, 1000)


def test_settings_override_the_defaults_and_minus_one_is_unlimited(tmp_path):
    c = config.load(write(tmp_path, "[quotas]\nshares = 5\ngigabytes = -1\nsnapshots = 0\n"))
    assert c.quotas.as_dict() == {"shares": 5, "gigabytes": -1, "snapshots": 0, "snapshot_gigabytes": 1000}


@pytest.mark.parametrize(
    "text,match",
    [
        ("[quotas]\nshares = -2\n", r"quotas\.shares: -2 is outside -1\.\."),
        ("[quotas]\ngigabytes = 'lots'\n", r"quotas\.gigabytes: expected an integer"),
        ("[quotas]\nsnapshots = true\n", r"quotas\.snapshots: expected an integer"),
        ("[quotas]\nsnapshot_gigabytes = 1.5\n", "expected an integer"),
        ("[quotas]\nshare_networks = 10\n", r"quotas: unknown setting\(s\): share_networks"),
        ("[quotas]\nshares = 4294967296\n", "outside"),
        ("quotas = 3\n", "quotas: expected a table"),
    ],
)
def test_bad_quota_settings_are_named(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        config.load(write(tmp_path, text))
