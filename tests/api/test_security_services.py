"""``/security-services`` and the share network security service actions in
process, with Manila's codes and bodies at the microversion boundaries."""

from __future__ import annotations

import uuid

import pytest

from shareflow.db.models import SecurityService, ShareNetworkSecurityService, ShareServer
from shareflow.domain import states
from shareflow.wiring import utcnow
from tests.api.conftest import assert_fault
from tests.api.test_networks import provider, share_network

SS = "/v2/security-services"


def create(api, *, token=None, version="2.65", **values) -> dict:
    body = {"security_service": {"type": "ldap", "name": f"ss-{uuid.uuid4().hex[:8]}", **values}}
    result = api.post(SS, body, token=token or api.tokens["alice"], version=version)
    assert result.status_code == 200, result.text
    return result.json["security_service"]


def action(api, sn_id: str, name: str, info, *, token=None, version="2.65"):
    return api.post(f"/v2/share-networks/{sn_id}/action", {name: info}, token=token or api.tokens["alice"],
                    version=version)


def add_server(api, sn: dict) -> str:
    """A live share server on the share network (as a conductor would have made it)."""
    server_id = str(uuid.uuid4())
    with api.services.db.write() as s:
        s.add(ShareServer(id=server_id, share_network_id=sn["id"],
                          share_network_subnet_id=sn["share_network_subnets"][0]["id"], project_id="proj-a",
                          backend="testhost@b1", host="testhost@b1", status=states.SERVER_ACTIVE,
                          created_at=utcnow()))
    return server_id


def drop_server(api, server_id: str) -> None:
    with api.services.db.write() as s:
        s.get(ShareServer, server_id).deleted_at = utcnow()


# --- the security services ------------------------------------------------------------


def test_create_show_per_microversion(api):
    fields = {"type": "active_directory", "description": "corp", "dns_ip": "10.0.0.2", "server": "dc1",
              "domain": "corp.example", "user": "svc", "password": "s3cret", "ou": "OU=shares"}
    ss = create(api, **fields)
    assert ss["status"] == "new" and ss["project_id"] == "proj-a" and ss["created_at"] and ss["updated_at"] is None
    for key in ("type", "description", "dns_ip", "server", "domain", "user", "ou"):
        assert ss[key] == fields[key], key
    # Stored, and shown back to its project as Manila shows it.
    assert ss["password"] == "s3cret"
    with api.services.db.read() as s:
        assert s.get(SecurityService, ss["id"]).password == "s3cret"
    assert "default_ad_site" not in ss  # 2.76, above the maximum
    shown = api.get(f"{SS}/{ss['id']}").json["security_service"]
    assert shown == ss
    # ``ou`` from 2.44: one below, at, above.
    assert "ou" not in api.get(f"{SS}/{ss['id']}", version="2.43").json["security_service"]
    assert api.get(f"{SS}/{ss['id']}", version="2.44").json["security_service"]["ou"] == "OU=shares"
    assert api.get(f"{SS}/{ss['id']}", version="2.45").json["security_service"]["ou"] == "OU=shares"
    # The v1-era version sees the rest as is.
    assert api.get(f"{SS}/{ss['id']}", version="2.0").json["security_service"]["domain"] == "corp.example"


@pytest.mark.parametrize("values, message", [
    ({"type": "nis"}, "Invalid type nis specified for security service. Valid types are "
                      "active_directory,ldap,kerberos"),
    ({"name": "x"}, "Invalid type None specified"),
    ({"type": "ldap", "name": "x" * 256}, "longer than 255"),
    ({"type": "ldap", "server": 5}, "must be a string"),
    ({"type": "active_directory", "default_ad_site": "site1"},
     '"default_ad_site" is only supported from API version 2.76.'),
])
def test_bad_create_is_400_and_writes_nothing(api, values, message):
    before = api.count(SecurityService)
    assert message in assert_fault(api.post(SS, {"security_service": values}), 400)
    assert api.count(SecurityService) == before


@pytest.mark.parametrize("body", [None, {}, [], {"security_service": "x"}, {"share_network": {}}])
def test_create_without_object_is_422(api, body):
    before = api.count(SecurityService)
    assert_fault(api.post(SS, body), 422)
    assert api.count(SecurityService) == before


def test_isolation_list_filters_and_all_tenants(api):
    mine = create(api, type="kerberos", server="kdc-filter", domain="d1")
    other = create(api, token=api.tokens["bob"], type="kerberos", server="kdc-filter")
    ids = lambda path="", **kw: [x["id"] for x in api.get(SS + path, **kw).json["security_services"]]  # noqa: E731
    assert mine["id"] in ids() and other["id"] not in ids()
    # A member's all_tenants is ignored; an admin's lists every project.
    assert other["id"] not in ids(params={"all_tenants": "1"})
    everyone = ids(params={"all_tenants": "1"}, token=api.tokens["admin"])
    assert {mine["id"], other["id"]} <= set(everyone)
    assert mine["id"] not in ids(token=api.tokens["admin"])  # the admin's own project only
    # Filters: exact values.
    assert ids(params={"server": "kdc-filter"}) == [mine["id"]]
    assert ids(params={"server": "kdc-filter", "domain": "nope"}) == []
    assert ids(params={"type": "kerberos", "name": mine["name"]}) == [mine["id"]]
    # A member's unknown parameter is ignored, an admin's matches nothing.
    assert mine["id"] in ids(params={"bogus": "1"})
    assert ids(params={"bogus": "1", "all_tenants": "1"}, token=api.tokens["admin"]) == []
    # Summary and detail shapes.
    summary = next(x for x in api.get(SS).json["security_services"] if x["id"] == mine["id"])
    assert summary == {"id": mine["id"], "name": mine["name"], "type": "kerberos", "status": "new"}
    detail = next(x for x in api.get(SS + "/detail").json["security_services"] if x["id"] == mine["id"])
    assert detail["share_networks"] == [] and detail["server"] == "kdc-filter"
    # Another project's: 403 to a member, seen by an admin; unknown: 404.
    assert_fault(api.get(f"{SS}/{other['id']}"), 403)
    assert api.get(f"{SS}/{other['id']}", token=api.tokens["admin"]).status_code == 200
    assert_fault(api.get(f"{SS}/{uuid.uuid4()}"), 404)
    assert_fault(api.put(f"{SS}/{other['id']}", {"security_service": {"name": "x"}}), 403)
    assert_fault(api.delete(f"{SS}/{other['id']}"), 403)
    # Paging.
    assert len(ids(params={"limit": "1"})) == 1


def test_update_and_delete(api):
    ss = create(api, server="old")
    path = f"{SS}/{ss['id']}"
    updated = api.put(path, {"security_service": {"server": "new", "name": "renamed", "password": "p2"}})
    assert updated.status_code == 200, updated.text
    body = updated.json["security_service"]
    assert body["server"] == "new" and body["name"] == "renamed" and body["password"] == "p2" and body["updated_at"]
    assert "Invalid type" in assert_fault(api.put(path, {"security_service": {"type": "nis"}}), 400)
    assert "2.76" in assert_fault(api.put(path, {"security_service": {"default_ad_site": "x"}}), 400)
    assert_fault(api.put(path, {"name": "x"}), 422)
    assert_fault(api.put(f"{SS}/{uuid.uuid4()}", {"security_service": {"name": "x"}}), 404)
    assert api.delete(path).status_code == 202
    assert_fault(api.get(path), 404)
    assert_fault(api.delete(path), 404)


def test_in_use_rules(api):
    """Added to a share network: not deletable (403); with share servers there,
    only name and description may change (403 otherwise)."""
    ss = create(api, server="s1")
    sn = share_network(api, provider(api))
    assert action(api, sn["id"], "add_security_service", {"security_service_id": ss["id"]}).status_code == 200
    path = f"{SS}/{ss['id']}"
    assert assert_fault(api.delete(path), 403) == "Cannot delete security service. It is assigned to share network(s)"
    assert api.put(path, {"security_service": {"server": "s2"}}).status_code == 200  # no servers yet
    detail = next(x for x in api.get(SS + "/detail").json["security_services"] if x["id"] == ss["id"])
    assert detail["share_networks"] == [sn["id"]]
    server = add_server(api, sn)
    msg = assert_fault(api.put(path, {"security_service": {"server": "s3"}}), 403)
    assert msg == (f"Cannot update security service {ss['id']}. It is attached to share network with share "
                   "server associated. Only 'name' and 'description' fields are available for update.")
    assert api.put(path, {"security_service": {"name": "n", "description": "d"}}).status_code == 200
    drop_server(api, server)
    assert action(api, sn["id"], "remove_security_service", {"security_service_id": ss["id"]}).status_code == 200
    assert api.delete(path).status_code == 202


# --- on share networks -------------------------------------------------------------------


def test_add_and_remove_on_a_share_network(api):
    ldap, kerberos, ldap2 = create(api), create(api, type="kerberos"), create(api)
    sn = share_network(api, None)
    added = action(api, sn["id"], "add_security_service", {"security_service_id": ldap["id"]}, version="2.0")
    assert added.status_code == 200 and added.json["share_network"]["id"] == sn["id"]
    assert action(api, sn["id"], "add_security_service", {"security_service_id": kerberos["id"]}).status_code == 200
    listed = api.get(SS, params={"share_network_id": sn["id"]}).json["security_services"]
    assert [x["id"] for x in listed] == [ldap["id"], kerberos["id"]]
    # One per type (409), the same one again too.
    for again in (ldap2, ldap):
        msg = assert_fault(action(api, sn["id"], "add_security_service", {"security_service_id": again["id"]}), 409)
        assert msg == ("Cannot add security service to share network. Security service with 'ldap' type "
                       f"already added to '{sn['id']}' share network")
    # The share networks a security service is on.
    by_ss = api.get("/v2/share-networks", params={"security_service_id": ldap["id"]}).json["share_networks"]
    assert [x["id"] for x in by_ss] == [sn["id"]]
    assert api.get("/v2/share-networks", params={"security_service_id": ldap2["id"]}).json["share_networks"] == []
    # Malformed, unknown, another project's, not associated.
    assert_fault(action(api, sn["id"], "add_security_service", {}), 400)
    assert_fault(action(api, sn["id"], "add_security_service", {"security_service_id": str(uuid.uuid4())}), 404)
    bobs = create(api, token=api.tokens["bob"], type="active_directory")
    assert_fault(action(api, sn["id"], "add_security_service", {"security_service_id": bobs["id"]}), 404)
    assert_fault(action(api, sn["id"], "add_security_service", {"security_service_id": ldap["id"]},
                        token=api.tokens["bob"]), 404)
    assert_fault(action(api, sn["id"], "remove_security_service", {}), 400)
    msg = assert_fault(action(api, sn["id"], "remove_security_service", {"security_service_id": ldap2["id"]}), 400)
    assert msg == f"Failed to dissociate share network {sn['id']} and security service {ldap2['id']}: No association defined."
    assert_fault(action(api, sn["id"], "remove_security_service", {"security_service_id": str(uuid.uuid4())}), 404)
    removed = action(api, sn["id"], "remove_security_service", {"security_service_id": ldap["id"]}, version="2.0")
    assert removed.status_code == 200
    listed = api.get(SS, params={"share_network_id": sn["id"]}).json["security_services"]
    assert [x["id"] for x in listed] == [kerberos["id"]]
    assert_fault(api.get(SS, params={"share_network_id": str(uuid.uuid4())}), 404)
    assert_fault(api.get(SS, params={"share_network_id": sn["id"]}, token=api.tokens["bob"]), 404)
    # A share network is deleted with its security services; they are then free.
    assert api.delete(f"/v2/share-networks/{sn['id']}").status_code == 202
    assert api.delete(f"{SS}/{kerberos['id']}").status_code == 202


def test_share_network_in_use_at_the_2_63_boundary(api):
    """With share servers: add is 403 before 2.63; from 2.63 the checks say
    400 (``security_service_update_support`` is false here); remove is 403."""
    ldap, kerberos = create(api), create(api, type="kerberos")
    sn = share_network(api, provider(api))
    assert action(api, sn["id"], "add_security_service", {"security_service_id": ldap["id"]}).status_code == 200
    server = add_server(api, sn)
    add = {"security_service_id": kerberos["id"]}
    assert assert_fault(action(api, sn["id"], "add_security_service", add, version="2.62"), 403) == \
        "Cannot add security services. Share network is used."
    for v in ("2.63", "2.64"):
        msg = assert_fault(action(api, sn["id"], "add_security_service", add, version=v), 400)
        assert msg == (f"Updating security services is not supported on this share network ({sn['id']}) while "
                       "it has shares. See the capability 'security_service_update_support'.")
        assert_fault(action(api, sn["id"], "add_security_service_check", add, version=v), 400)
    assert assert_fault(action(api, sn["id"], "remove_security_service", {"security_service_id": ldap["id"]}), 403) \
        == "Cannot remove security services. Share network is used."
    assert api.get(SS, params={"share_network_id": sn["id"]}).json["security_services"][0]["id"] == ldap["id"]
    shown = api.get(f"/v2/share-networks/{sn['id']}").json["share_network"]
    assert shown["security_service_update_support"] is False
    drop_server(api, server)
    assert action(api, sn["id"], "add_security_service", add, version="2.62").status_code == 200


def test_update_security_service_and_checks(api):
    old, new, kerberos, spare = create(api), create(api), create(api, type="kerberos"), create(api)
    sn = share_network(api, None)
    assert action(api, sn["id"], "add_security_service", {"security_service_id": old["id"]}).status_code == 200
    swap = {"current_service_id": old["id"], "new_service_id": new["id"]}
    # 2.63 actions: 404 below (Manila's bare version-not-found).
    for name, info in (("update_security_service", swap), ("update_security_service_check", swap),
                       ("add_security_service_check", {"security_service_id": kerberos["id"]})):
        assert_fault(action(api, sn["id"], name, info, version="2.62"), 404)
    # The checks: compatible, admins also see the hosts' results.
    check = action(api, sn["id"], "update_security_service_check", swap, version="2.63")
    assert check.status_code == 202
    assert check.json == {"compatible": True, "requested_operation": {
        "operation": "update_security_service", "current_security_service": old["id"],
        "new_security_service": new["id"]}}
    add_check = action(api, sn["id"], "add_security_service_check", {"security_service_id": kerberos["id"]})
    assert add_check.status_code == 202 and add_check.json["requested_operation"] == {
        "operation": "add_security_service", "current_security_service": None, "new_security_service": kerberos["id"]}
    as_admin = action(api, sn["id"], "add_security_service_check", {"security_service_id": kerberos["id"]},
                      token=api.tokens["admin"])
    assert as_admin.json["hosts_check_result"] == {}
    # Check errors.
    assert "Malformed request body" in assert_fault(action(api, sn["id"], "add_security_service_check", {}), 400)
    missing = str(uuid.uuid4())
    assert assert_fault(action(api, sn["id"], "add_security_service_check", {"security_service_id": missing}), 400) \
        == f"Security service {missing} doesn't exist."
    assert_fault(action(api, sn["id"], "add_security_service_check", {"security_service_id": spare["id"]}), 409)
    # The update: 202 and the share network; errors as Manila's.
    assert "Malformed" in assert_fault(action(api, sn["id"], "update_security_service", {"new_service_id": "x"}), 400)
    assert assert_fault(action(api, sn["id"], "update_security_service",
                               {"current_service_id": old["id"], "new_service_id": missing}), 400) == \
        "The current security service or the new security service doesn't exist."
    msg = assert_fault(action(api, sn["id"], "update_security_service",
                              {"current_service_id": spare["id"], "new_service_id": new["id"]}), 409)
    assert msg == f"The specified current security service {spare['id']} is not associated to the share network {sn['id']}."
    msg = assert_fault(action(api, sn["id"], "update_security_service",
                              {"current_service_id": old["id"], "new_service_id": kerberos["id"]}), 409)
    assert "can only be replaced by one of the same type" in msg
    done = action(api, sn["id"], "update_security_service", swap, version="2.64")
    assert done.status_code == 202 and done.json["share_network"]["id"] == sn["id"]
    listed = api.get(SS, params={"share_network_id": sn["id"]}).json["security_services"]
    assert [x["id"] for x in listed] == [new["id"]]
    # With a share server, the update is refused (400) as its check is.
    server = add_server(api, {**sn, "share_network_subnets": sn["share_network_subnets"]})
    back = {"current_service_id": new["id"], "new_service_id": old["id"]}
    assert "security_service_update_support" in assert_fault(
        action(api, sn["id"], "update_security_service", back), 400)
    assert_fault(action(api, sn["id"], "update_security_service_check", back), 400)
    drop_server(api, server)
    assert api.count(ShareNetworkSecurityService, share_network_id=sn["id"]) == 1


def test_garbage_and_routes(api):
    for ref in ("x", "%00", "a" * 300):
        assert_fault(api.get(f"{SS}/{ref}"), 404)
        assert_fault(api.delete(f"{SS}/{ref}"), 404)
    assert api.get(SS + "/", params={}).status_code == 200  # trailing slash is the collection
    assert_fault(api.post(f"/v2/share-networks/{uuid.uuid4()}/action",
                          {"add_security_service": {"security_service_id": "x"}}), 404)


def test_default_ad_site_from_2_76_in_the_service(api):
    """Above this service's maximum (2.65) today, but ready for when it is raised:
    ``default_ad_site`` is kept from 2.76, and not with ``server`` for AD."""
    from shareflow.exceptions import InvalidInput
    from shareflow.services.context import Caller

    who = Caller(project_id="proj-a", user_id="alice")
    service = api.services.security_services
    at_2_76 = lambda v: True  # noqa: E731
    below = lambda v: v in ("2.44",)  # noqa: E731
    made = service.create(who, {"type": "active_directory", "default_ad_site": "site-1"}, version_at_least=at_2_76)
    assert made.default_ad_site == "site-1"
    with pytest.raises(InvalidInput, match="only supported from API version 2.76"):
        service.create(who, {"type": "active_directory", "default_ad_site": "site-1"}, version_at_least=below)
    with pytest.raises(InvalidInput, match="Specify either server or 'default_ad_site'"):
        service.create(who, {"type": "active_directory", "server": "dc", "default_ad_site": "s"},
                       version_at_least=at_2_76)
    with pytest.raises(InvalidInput, match="Specify either server or 'default_ad_site'"):
        service.update(who, made.id, {"server": "dc", "default_ad_site": "s2"}, version_at_least=at_2_76)
    kept, _ = service.update(who, made.id, {"default_ad_site": "site-2"}, version_at_least=at_2_76)
    assert kept.default_ad_site == "site-2"
