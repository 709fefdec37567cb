"""The built-in identity's routes under ``/identity`` (Keystone v3's API):
version discovery, ``/v3/auth/tokens``, and the admin routes the
``openstack user|project|role|role assignment|application credential``
commands use. They are public to the app's authentication middleware and
authenticate their caller themselves, where Keystone asks for one (all but
discovery and getting a token)."""

from __future__ import annotations

from datetime import UTC, datetime

import falcon

from shareflow.api.views import identity as view
from shareflow.api.views.common import root_url
from shareflow.auth import Authenticator, Identity
from shareflow.exceptions import Forbidden, InvalidInput, NotFound, NotAuthenticated
from shareflow.services.identity import IdentityService, TokenInfo

SUBJECT_TOKEN = "X-Subject-Token"


class IdentityResource:
    def __init__(self, config, identity: IdentityService, authenticator: Authenticator):
        self.config = config
        self.identity = identity
        self.authenticator = authenticator

    def api_url(self, req: falcon.Request) -> str:
        return root_url(self.config.api.public_url, req.prefix)

    def identity_url(self, req: falcon.Request) -> str:
        return self.api_url(req) + view.IDENTITY_PATH

    def caller(self, req: falcon.Request) -> Identity:
        return self.authenticator.authenticate(req.get_header("X-Auth-Token"), req.headers)


class IdentityVersions(IdentityResource):
    """``GET /identity`` (300, every version) and ``GET /identity/v3`` (200, v3)."""

    def __init__(self, config, identity, authenticator, *, root: bool):
        super().__init__(config, identity, authenticator)
        self.root = root

    def on_get(self, req, resp) -> None:
        url = self.identity_url(req)
        if self.root:
            resp.status = 300
            resp.media = view.versions(url)
        else:
            resp.media = {"version": view.version(url)}


class AuthTokens(IdentityResource):
    """``/identity/v3/auth/tokens``: issue (POST), validate (GET, HEAD), revoke (DELETE)."""

    def on_post(self, req, resp) -> None:
        body = req.context.body
        if not isinstance(body, dict) or "auth" not in body:
            raise InvalidInput("no auth object", user_message="Expecting to find auth in request body.")
        info = self.identity.authenticate(body["auth"])
        self._answer(req, resp, info, status=201)

    def on_get(self, req, resp) -> None:
        self._answer(req, resp, self._subject(req))

    def on_head(self, req, resp) -> None:
        info = self._subject(req)
        resp.set_header(SUBJECT_TOKEN, info.token)
        resp.status = 200

    def on_delete(self, req, resp) -> None:
        self.identity.revoke(self._subject(req))
        resp.status = 204

    def _answer(self, req, resp, info: TokenInfo, status: int = 200) -> None:
        nocatalog = "nocatalog" in req.params
        resp.status = status
        resp.set_header(SUBJECT_TOKEN, info.token)
        resp.media = view.token(info, self.config.identity, self.api_url(req), with_catalog=not nocatalog)

    def _subject(self, req) -> TokenInfo:
        """The X-Subject-Token, for a caller allowed to see it: an admin, or its own user."""
        caller = self.caller(req)
        subject = req.get_header(SUBJECT_TOKEN)
        if not subject:
            raise InvalidInput("no X-Subject-Token", user_message="X-Subject-Token is required.")
        try:
            info = self.identity.validate(subject)
        except NotAuthenticated as e:
            raise NotFound(e.message, user_message=f"Could not find token: {subject[:16]}...") from None
        if not caller.is_admin and caller.user_id != info.user.id:
            raise Forbidden("the subject token is another user's",
                            user_message="You are not authorized to perform the requested action.")
        return info


def add_routes(app: falcon.App, config, identity: IdentityService, authenticator: Authenticator) -> None:
    prefix = view.IDENTITY_PATH
    app.add_route(prefix, IdentityVersions(config, identity, authenticator, root=True))
    app.add_route(prefix + "/v3", IdentityVersions(config, identity, authenticator, root=False))
    app.add_route(prefix + "/v3/auth/tokens", AuthTokens(config, identity, authenticator))
    add_admin_routes(app, config, identity, authenticator)


# --- the admin routes `openstack user|project|role|application credential` use -----------


def _listing(name: str, items: list, url: str) -> dict:
    return {name: items, "links": {"self": url, "next": None, "previous": None}}


def _section(req, key: str) -> dict:
    body = req.context.body
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise InvalidInput(f"no {key} object", user_message=f"Expecting to find {key} in request body.")
    return body[key]


def _optional_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string", user_message=f"Invalid input for field '{key}'.")
    return value


def _optional_bool(data: dict, key: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false", user_message=f"Invalid input for field '{key}'.")
    return value


def _expiry(value) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"expires_at {value!r}", user_message="Invalid input for field 'expires_at'.") from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


FORBIDDEN = "You are not authorized to perform the requested action."


class AdminResource(IdentityResource):
    """Keystone's admin API: its callers must hold the admin role."""

    def admin(self, req) -> Identity:
        caller = self.caller(req)
        if not caller.is_admin:
            raise Forbidden(f"{req.method} {req.path} needs the admin role", user_message=FORBIDDEN)
        return caller


class Domains(AdminResource):
    """The one domain, for clients that look it up (``--domain default``)."""

    def _domain(self, req) -> dict:
        url = f"{self.identity_url(req)}/v3/domains/{view.DOMAIN['id']}"
        return {**view.DOMAIN, "enabled": True, "description": "", "tags": [], "options": {},
                "links": {"self": url}}

    def on_get(self, req, resp) -> None:
        self.caller(req)
        name = req.get_param("name")
        items = [self._domain(req)] if name in (None, view.DOMAIN["name"]) else []
        resp.media = _listing("domains", items, f"{self.identity_url(req)}/v3/domains")

    def on_get_item(self, req, resp, domain_ref: str) -> None:
        self.caller(req)
        if domain_ref not in (view.DOMAIN["id"], view.DOMAIN["name"]):
            raise NotFound(f"domain {domain_ref}", user_message=f"Could not find domain: {domain_ref}.")
        resp.media = {"domain": self._domain(req)}


class Users(AdminResource):
    def on_get(self, req, resp) -> None:
        self.admin(req)
        url = self.identity_url(req)
        name = req.get_param("name")
        rows = [u for u in self.identity.users() if name is None or u.name == name]
        resp.media = _listing("users", [view.user(u, url) for u in rows], url + "/v3/users")

    def on_post(self, req, resp) -> None:
        self.admin(req)
        data = _section(req, "user")
        domain = _optional_str(data, "domain_id")
        if domain not in (None, view.DOMAIN["id"]):
            raise InvalidInput(f"domain {domain}", user_message=f"Could not find domain: {domain}.")
        user = self.identity.create_user(data.get("name"), _optional_str(data, "password"),
                                         enabled=_optional_bool(data, "enabled") is not False)
        project = _optional_str(data, "default_project_id")
        if project:
            self.identity.project(project)  # it must exist; no role is given (Keystone neither)
        resp.status = 201
        resp.media = {"user": view.user(user, self.identity_url(req))}

    def on_get_item(self, req, resp, user_ref: str) -> None:
        caller = self.caller(req)
        user = self.identity.user(user_ref)
        if not caller.is_admin and caller.user_id != user.id:
            raise Forbidden("another user", user_message=FORBIDDEN)
        resp.media = {"user": view.user(user, self.identity_url(req))}

    def on_patch_item(self, req, resp, user_ref: str) -> None:
        self.admin(req)
        data = _section(req, "user")
        user = self.identity.update_user(user_ref, password=_optional_str(data, "password"),
                                         enabled=_optional_bool(data, "enabled"), name=_optional_str(data, "name"))
        resp.media = {"user": view.user(user, self.identity_url(req))}

    def on_delete_item(self, req, resp, user_ref: str) -> None:
        self.admin(req)
        self.identity.delete_user(user_ref)
        resp.status = 204


class Projects(AdminResource):
    def on_get(self, req, resp) -> None:
        self.admin(req)
        url = self.identity_url(req)
        name = req.get_param("name")
        rows = [p for p in self.identity.projects() if name is None or p.name == name]
        resp.media = _listing("projects", [view.project(p, url) for p in rows], url + "/v3/projects")

    def on_post(self, req, resp) -> None:
        self.admin(req)
        data = _section(req, "project")
        domain = _optional_str(data, "domain_id")
        if domain not in (None, view.DOMAIN["id"]):
            raise InvalidInput(f"domain {domain}", user_message=f"Could not find domain: {domain}.")
        project = self.identity.create_project(data.get("name"), description=_optional_str(data, "description"),
                                               enabled=_optional_bool(data, "enabled") is not False)
        resp.status = 201
        resp.media = {"project": view.project(project, self.identity_url(req))}

    def on_get_item(self, req, resp, project_ref: str) -> None:
        caller = self.caller(req)
        project = self.identity.project(project_ref)
        if not caller.is_admin and caller.project_id != project.id:
            raise Forbidden("another project", user_message=FORBIDDEN)
        resp.media = {"project": view.project(project, self.identity_url(req))}

    def on_delete_item(self, req, resp, project_ref: str) -> None:
        self.admin(req)
        self.identity.delete_project(project_ref)
        resp.status = 204


class Roles(AdminResource):
    def on_get(self, req, resp) -> None:
        self.caller(req)
        url = self.identity_url(req)
        name = req.get_param("name")
        rows = [r for r in self.identity.roles() if name is None or r.name == name]
        resp.media = _listing("roles", [view.role(r, url) for r in rows], url + "/v3/roles")

    def on_get_item(self, req, resp, role_ref: str) -> None:
        self.caller(req)
        resp.media = {"role": view.role(self.identity.role(role_ref), self.identity_url(req))}


class ProjectUserRoles(AdminResource):
    """``/v3/projects/{project}/users/{user}/roles[/{role}]``."""

    def on_get(self, req, resp, project_ref: str, user_ref: str) -> None:
        self.admin(req)
        url = self.identity_url(req)
        rows = self.identity.assignments(user_ref=user_ref, project_ref=project_ref)
        resp.media = _listing("roles", [view.role(r, url) for _u, _p, r in rows],
                              f"{url}/v3/projects/{project_ref}/users/{user_ref}/roles")

    def on_put_item(self, req, resp, project_ref: str, user_ref: str, role_ref: str) -> None:
        self.admin(req)
        self.identity.add_role(user_ref, project_ref, role_ref)
        resp.status = 204

    def on_head_item(self, req, resp, project_ref: str, user_ref: str, role_ref: str) -> None:
        self.admin(req)
        if not self.identity.has_role(user_ref, project_ref, role_ref):
            raise NotFound("no such assignment", user_message=f"Could not find role assignment: {role_ref}.")
        resp.status = 204

    on_get_item = on_head_item

    def on_delete_item(self, req, resp, project_ref: str, user_ref: str, role_ref: str) -> None:
        self.admin(req)
        self.identity.remove_role(user_ref, project_ref, role_ref)
        resp.status = 204


class RoleAssignments(AdminResource):
    def on_get(self, req, resp) -> None:
        self.admin(req)
        url = self.identity_url(req)
        rows = self.identity.assignments(user_ref=req.get_param("user.id"),
                                         project_ref=req.get_param("scope.project.id"),
                                         role_ref=req.get_param("role.id"))
        names = "include_names" in req.params
        items = []
        for user, project, role in rows:
            item = {"role": {"id": role.id}, "user": {"id": user.id}, "scope": {"project": {"id": project.id}},
                    "links": {"assignment": f"{url}/v3/projects/{project.id}/users/{user.id}/roles/{role.id}"}}
            if names:
                item["role"]["name"] = role.name
                item["user"].update(name=user.name, domain=view.DOMAIN)
                item["scope"]["project"].update(name=project.name, domain=view.DOMAIN)
            items.append(item)
        resp.media = _listing("role_assignments", items, url + "/v3/role_assignments")


class ApplicationCredentials(IdentityResource):
    """``/v3/users/{user}/application_credentials[/{id}]``: a user's own
    (admins may also read and delete others'). Created on the token's
    project with at most the token's roles; a token from an application
    credential cannot make another (Keystone's restricted credentials)."""

    def _owner(self, req, user_ref: str, *, admin_may: bool):
        caller = self.caller(req)
        user = self.identity.user(user_ref)
        if caller.user_id != user.id and not (admin_may and caller.is_admin):
            raise Forbidden("another user's application credentials", user_message=FORBIDDEN)
        return caller, user

    def _roles(self, credential) -> list:
        names = set(filter(None, credential.roles.split(",")))
        return [r for r in self.identity.roles() if r.name in names]

    def on_get(self, req, resp, user_ref: str) -> None:
        _caller, user = self._owner(req, user_ref, admin_may=True)
        url = self.identity_url(req)
        name = req.get_param("name")
        rows = [c for c in self.identity.app_credentials(user.id) if name is None or c.name == name]
        resp.media = _listing("application_credentials", [view.app_credential(c, self._roles(c), url) for c in rows],
                              f"{url}/v3/users/{user.id}/application_credentials")

    def on_post(self, req, resp, user_ref: str) -> None:
        caller, user = self._owner(req, user_ref, admin_may=False)
        token = self.identity.validate(req.get_header("X-Auth-Token") or "")
        if token.app_credential is not None or token.project is None:
            raise Forbidden("a restricted or unscoped token cannot make application credentials",
                            user_message=FORBIDDEN)
        data = _section(req, "application_credential")
        wanted = data.get("roles")
        if wanted is not None and (not isinstance(wanted, list) or not all(isinstance(r, dict) for r in wanted)):
            raise InvalidInput("roles must be a list of objects", user_message="Invalid input for field 'roles'.")
        names = None
        if wanted:
            names = [self.identity.role(r.get("id") or r.get("name") or "").name for r in wanted]
            if not set(names) <= set(token.role_names):
                raise Forbidden("roles beyond the token's", user_message=FORBIDDEN)
        credential, secret = self.identity.create_app_credential(
            user.id, token.project.id, data.get("name"), roles=names or list(token.role_names),
            expires_at=_expiry(data.get("expires_at")), description=_optional_str(data, "description"),
            secret=_optional_str(data, "secret"))
        resp.status = 201
        resp.media = {"application_credential": view.app_credential(
            credential, self._roles(credential), self.identity_url(req), secret=secret)}

    def on_get_item(self, req, resp, user_ref: str, credential_ref: str) -> None:
        _caller, user = self._owner(req, user_ref, admin_may=True)
        credential = self.identity.app_credential(credential_ref, user.id)
        resp.media = {"application_credential": view.app_credential(
            credential, self._roles(credential), self.identity_url(req))}

    def on_delete_item(self, req, resp, user_ref: str, credential_ref: str) -> None:
        _caller, user = self._owner(req, user_ref, admin_may=True)
        self.identity.delete_app_credential(credential_ref, user.id)
        resp.status = 204


def add_admin_routes(app: falcon.App, config, identity: IdentityService, authenticator: Authenticator) -> None:
    v3 = view.IDENTITY_PATH + "/v3"

    def both(path: str, resource, item: str) -> None:
        app.add_route(v3 + path, resource)
        app.add_route(v3 + path + "/{" + item + "}", resource, suffix="item")

    both("/domains", Domains(config, identity, authenticator), "domain_ref")
    both("/users", Users(config, identity, authenticator), "user_ref")
    both("/projects", Projects(config, identity, authenticator), "project_ref")
    both("/roles", Roles(config, identity, authenticator), "role_ref")
    # Not "{project_id}": that name is the share API's path segment, checked by the middleware.
    both("/projects/{project_ref}/users/{user_ref}/roles", ProjectUserRoles(config, identity, authenticator),
         "role_ref")
    app.add_route(v3 + "/role_assignments", RoleAssignments(config, identity, authenticator))
    both("/users/{user_ref}/application_credentials", ApplicationCredentials(config, identity, authenticator),
         "credential_ref")
