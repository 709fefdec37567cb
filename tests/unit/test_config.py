from pathlib import Path

import pytest

from shareflow import config
from shareflow.exceptions import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "etc" / "shareflow.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_defaults_and_relative_paths(tmp_path):
    p = write(tmp_path, 'state_dir = "../var"\n[[backends]]\nname = "local"\n')
    c = config.load(p)
    assert c.state_dir == (tmp_path / "var").resolve()
    assert c.database.url == f"sqlite:///{c.state_dir / 'shareflow.db'}"
    assert c.zookeeper.hosts == config.DEFAULT_ZK_HOSTS
    assert (c.api.host, c.api.port) == ("127.0.0.1", 8786)
    assert c.conductor.workers == config.DEFAULT_CONDUCTOR_WORKERS
    assert c.zookeeper.request_timeout == config.DEFAULT_ZK_REQUEST_TIMEOUT
    b = c.backend("local")
    assert b.host(c.host).endswith("@local#pool0")
    assert b.btrfs.mount_point == c.state_dir / "backends" / "local" / "pool"
    assert b.ganesha.port == 2049 and b.ganesha.managed
    assert b.ganesha.mount_table == config.DEFAULT_GANESHA_MOUNT_TABLE == "host"
    assert c.default_share_type == "default"
    assert c.conductor.export_servers_at_exit == "keep"
    assert c.conductor.write_retry_wait == config.DEFAULT_WRITE_RETRY_WAIT == 5.0  # TaskFlow's own
    # Capacity policy: the driver's (or the named defaults) unless configured.
    assert (b.max_over_subscription_ratio, b.reserved_percentage, b.thin_provisioning) == (None, None, None)


def test_a_backends_capacity_policy(tmp_path):
    p = write(tmp_path, '[[backends]]\nname = "local"\nmax_over_subscription_ratio = 2\nreserved_percentage = 5\n'
                        'thin_provisioning = true\nfilter_function = "share.size < 100"\n')
    b = config.load(p).backend("local")
    assert (b.max_over_subscription_ratio, b.reserved_percentage, b.thin_provisioning, b.filter_function) == (
        2.0, 5, True, "share.size < 100")


def test_env_var_names_the_file(tmp_path, monkeypatch):
    p = write(tmp_path, 'host = "h1"\n')
    monkeypatch.setenv(config.ENV_VAR, str(p))
    assert config.load().host == "h1"


@pytest.mark.parametrize(
    "text,match",
    [
        ("bogus = 1\n", "unknown setting"),
        ("[api]\nbind = 'nope'\n", "HOST:PORT"),
        ("[api]\nworkers = 0\n", "outside"),
        ("[api]\nworkers = 'two'\n", "expected an integer"),
        ("[auth]\nstrategy = 'ldap'\n", "strategy"),
        ("[database]\nurl = 'mysql://x'\n", "only sqlite and postgresql"),
        ("[zookeeper]\nchroot = 'relative'\n", "absolute path"),
        ("[zookeeper]\nsession_timeout = 0\n", "greater than"),
        ("[[backends]]\nname = 'Bad Name'\n", "lowercase"),
        ("[[backends]]\nname = 'a'\n[[backends]]\nname = 'a'\n", "unique"),
        ("[[backends]]\nname = 'a'\nshare_driver = 'lvm'\n", "share_driver"),
        ("[[backends]]\nname = 'a'\n[backends.ganesha]\naddress = 'example.com'\n", "not an IP"),
        ("[[backends]]\nname = 'a'\n[backends.ganesha]\nnetns = 'a b'\n", "namespace"),
        ("[[backends]]\nname = 'a'\n[backends.ganesha]\nmount_table = 'mine'\n", "mount_table"),
        ("[[backends]]\nname = 'a'\n[backends.btrfs]\nsize = 3\n", "unknown setting"),
        ("[conductor]\nworkers = true\n", "expected an integer"),
        ("[conductor]\nexport_servers_at_exit = 'restart'\n", "export_servers_at_exit"),
        ("[conductor]\nwrite_retry_wait = 0\n", "write_retry_wait: must be greater than 0"),
        ("[[backends]]\n", "name: required"),
        ("[[backends]]\nname = 'a'\nmax_over_subscription_ratio = 0.5\n", "less than 1.0"),
        ("[[backends]]\nname = 'a'\nreserved_percentage = 101\n", "outside"),
        ("[[backends]]\nname = 'a'\nthin_provisioning = 'yes'\n", "true or false"),
        ("[[backends]]\nname = 'a'\nfilter_function = 'share.size.__class__'\n", "filter_function"),
    ],
)
def test_bad_settings_are_named(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as e:
        config.load(write(tmp_path, text))
    assert "shareflow.toml" in e.value.message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[[["))


def test_embedded_config_file_is_valid():
    root = Path(__file__).resolve().parents[2]
    c = config.load(root / "etc" / "shareflow.toml")
    assert c.zookeeper.embedded
    assert c.zookeeper.request_timeout == 5.0
    assert [b.name for b in c.backends] == ["local"]
    assert not c.backends[0].driver_handles_share_servers


def test_ganesha_mount_table_reaches_share_servers(tmp_path):
    c = config.load(write(tmp_path, "[[backends]]\nname = 'a'\n[backends.ganesha]\nmount_table = 'own'\n"))
    assert c.backend("a").ganesha.mount_table == "own"
    assert c.backend("a").share_servers.mount_table == "own"
    c = config.load(write(tmp_path, "[[backends]]\nname = 'b'\ndriver_handles_share_servers = true\n"
                                    "[backends.ganesha]\nmount_table = 'own'\n"))
    assert c.backend("b").share_servers.mount_table == "own"
