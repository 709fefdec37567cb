"""Security services through the unmodified ``openstack share`` CLI against
the API served over real HTTP (create, list, show, set, unset, delete; added
to and removed from a share network, the 2.63 check included)."""

from __future__ import annotations

import json

from tests.api.test_manilaclient import _openstack_cli
from tests.api.test_networks_manilaclient import server  # noqa: F401  (module fixture)


def test_openstack_cli_security_services(server, tmp_path):  # noqa: F811
    env, srv = server
    auth = ["--os-auth-type", "admin_token", "--os-endpoint", f"{srv.url}/v2",
            f"--os-token={env.tokens['alice']}", "--os-share-api-version", "2.65"]

    def osc(*argv, ok=True):
        result = _openstack_cli(*auth, "share", *argv, home=tmp_path)
        assert (result.returncode == 0) == ok, (argv, result.stdout, result.stderr)
        return result.stdout + result.stderr

    ss_id = osc("security", "service", "create", "ldap", "--name", "osc-ss", "--server", "ldap.corp",
                "--domain", "corp.example", "--password", "s3cret", "--ou", "OU=x", "-f", "value", "-c", "id").strip()
    assert ss_id in osc("security", "service", "list", "-f", "value", "-c", "ID").split()
    shown = json.loads(osc("security", "service", "show", ss_id, "-f", "json"))
    assert (shown["server"], shown["ou"], shown["password"]) == ("ldap.corp", "OU=x", "s3cret")
    osc("security", "service", "set", ss_id, "--server", "ldap2.corp", "--description", "moved")
    shown = json.loads(osc("security", "service", "show", "osc-ss", "-f", "json"))
    assert (shown["server"], shown["description"]) == ("ldap2.corp", "moved")
    osc("security", "service", "unset", ss_id, "--description")
    assert json.loads(osc("security", "service", "show", ss_id, "-f", "json"))["description"] in (None, "")

    sn_id = osc("network", "create", "--name", "osc-ss-net", "-f", "value", "-c", "id").strip()
    assert "can be added" in osc("network", "set", sn_id, "--new-security-service", "osc-ss", "--check-only")
    osc("network", "set", sn_id, "--new-security-service", "osc-ss")
    shown = json.loads(osc("network", "show", sn_id, "-f", "json"))
    assert "osc-ss" in json.dumps(shown["security_services"]) and ss_id in json.dumps(shown["security_services"])
    osc("security", "service", "delete", ss_id, ok=False)  # on a share network: 403
    osc("network", "unset", sn_id, "--security-service", "osc-ss")
    assert ss_id not in json.dumps(json.loads(osc("network", "show", sn_id, "-f", "json"))["security_services"])
    osc("security", "service", "delete", ss_id)
    assert ss_id not in osc("security", "service", "list", "-f", "value", "-c", "ID").split()
    osc("network", "delete", sn_id)
