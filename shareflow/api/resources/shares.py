"""``/shares``: create, list (summary and detail), show, update, delete.

Follows manila/api/v2/shares.py: ``name``/``description`` and their old
``display_*`` spellings, ``share_type`` or ``volume_type`` (not both),
public shares only for admins (policy ``create_public_share`` /
``set_public_share``), delete answered 202, list filters gated by microversion.

Lists are filtered, ordered, counted (``with_count``, 2.42) and paged by the
database (:func:`shareflow.db.shares.list_`); a full page links to the next
one as Manila's ``ViewBuilder._get_collection_links`` does (``shares_links``,
the request's query with ``marker`` = the last id).
"""

from __future__ import annotations

from shareflow import policy
from shareflow.api import params as qp
from shareflow.api.resources.base import Resource, accepted, body, caller, reply, section, version
from shareflow.api.views import shares as view
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput, UnprocessableEntity
from shareflow.services import scheduler_hints
from shareflow.services.context import Caller

#: Sort keys a client may send (manilaclient's SHARE_SORT_KEY_VALUES) -> columns.
SORT_KEYS = {
    "id": "id", "status": "status", "size": "size", "host": "host",
    "share_proto": "share_proto", "availability_zone": "availability_zone",
    "availability_zone_id": "availability_zone", "user_id": "user_id",
    "project_id": "project_id", "created_at": "created_at", "updated_at": "updated_at",
    "name": "name", "display_name": "name", "share_type_id": "share_type_id",
    "share_type": "share_type_id", "share_network_id": "share_network_id",
    "share_network": "share_network_id", "snapshot_id": "snapshot_id", "snapshot": "snapshot_id",
}
#: Exact-match filters -> columns (manila's _get_share_search_options, minus
#: what does not exist here).
EQUAL_FILTERS = {
    "name": "name", "display_name": "name", "status": "status",
    "share_type_id": "share_type_id", "share_type": "share_type_id",
    "snapshot_id": "snapshot_id", "share_network_id": "share_network_id",
    "display_description": "description",
}
PUBLIC_POLICY_MESSAGE = "User is not authorized to set 'is_public' to True in the request."
UPDATABLE = ("display_name", "display_description", "name", "description", "is_public")
#: Update's length check (manila.api.common.check_display_field_length) names
#: the display_* field, whichever spelling was sent.
DISPLAY_FIELDS = {"display_name": "display_name", "name": "display_name",
                  "display_description": "display_description", "description": "display_description"}
DISPLAY_FIELD_MAX = 255
#: webob's HTTPUnprocessableEntity explanation.
UNPROCESSABLE_MESSAGE = "Unable to process the contained instructions"


def public_flag(value, who: Caller, rule: str) -> bool:
    """manila.api.common.validate_public_share_policy: ``rule`` is
    ``share:create_public_share`` or ``share:set_public_share``."""
    public = validation.boolean(value, "is_public")
    if public:
        policy.enforce(who, rule, message=PUBLIC_POLICY_MESSAGE)
    return public


class Shares(Resource):
    POLICY = {"on_get": "share:get_all", "on_get_detail": "share:get_all", "on_post": "share:create"}

    # --- listing --------------------------------------------------------------------

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        who, ver = caller(req), version(req)
        q = qp.flatten(req.params)
        filters: dict = {}
        for key, column in EQUAL_FILTERS.items():
            if key in q:
                filters[column] = qp.text(q[key], key)
        if ver.at_least("2.31") and "share_group_id" in q:
            filters["share_group_id"] = qp.text(q["share_group_id"], "share_group_id")
        if ver.at_least("2.36"):
            if "description" in q:
                filters["description"] = qp.text(q["description"], "description")
            for key in ("name~", "description~"):
                if key in q:
                    filters[key] = qp.text(q[key], key)
        if "metadata" in q:
            filters["metadata"] = qp.literal_dict(q["metadata"], "metadata")
        if "extra_specs" in q:
            # Manila checks share_types_extra_spec:index (admin) for it, at every microversion.
            policy.enforce(who, "share_types_extra_spec:index")
            filters["extra_specs"] = validation.extra_specs(qp.literal_dict(q["extra_specs"], "extra_specs"))
        # As Manila: other projects' public shares only with is_public=true;
        # a member's all_tenants is ignored (policy share:list_all_projects).
        public = qp.boolean(q["is_public"], "is_public") if "is_public" in q else False
        if "host" in q:
            policy.enforce(who, "share:list_by_host")
            filters["host"] = qp.text(q["host"], "host")
        all_projects = qp.all_tenants(q) and policy.authorize(who, "share:list_all_projects")
        if "project_id" in q and policy.authorize(who, "share:list_all_projects"):
            filters["project_id"] = qp.text(q["project_id"], "project_id")
        sort_key, sort_dir = qp.sort(q, SORT_KEYS)
        limit, offset = qp.limit(q.get("limit")), qp.offset(q.get("offset"))
        with_count = ver.at_least("2.42") and "with_count" in q and qp.boolean(q["with_count"], "with_count")
        if ver.at_least("2.35"):
            for key in ("export_location_id", "export_location_path"):
                if key in q:
                    filters[key] = qp.text(q[key], key, 2048)
        marker = qp.marker(q.get("marker"))
        rows, count = self.services.shares.list(
            who, all_projects=all_projects, filters=filters, sort_key=sort_key, sort_dir=sort_dir,
            limit=limit, offset=offset, marker=marker, with_count=with_count, summary=not detailed,
            public=public,
        )
        ctx = self.view_context(req)
        next_href = None
        if limit is not None and rows and len(rows) == limit:
            # Manila's _get_collection_links: a full page may have a next one.
            # It points at the route asked (Manila's points detail lists at
            # /shares, whose next page is then a summary).
            route = "shares/detail" if detailed else "shares"
            next_href = f"{ctx.collection_url(route)}?{qp.next_query(q, rows[-1].id)}"
        reply(resp, view.list_view(rows, ctx, detailed=detailed, count=count, next_href=next_href))

    # --- creating ---------------------------------------------------------------------

    def on_post(self, req, resp) -> None:
        who = caller(req)
        _, share = section(req, "share")
        if "share_type" in share and "volume_type" in share:
            raise InvalidInput("Cannot specify both share_type and volume_type")
        is_public = share.get("is_public", False)
        if "is_public" in share:
            is_public = public_flag(is_public, who, "share:create_public_share")
        # Each spelling is typed before one is chosen: a wrong type in the one
        # not taken is still a 400, never a value dropped for being falsy.
        names = [validation.share_name(share.get(k)) for k in ("name", "display_name")]
        descriptions = [validation.share_description(share.get(k))
                        for k in ("description", "display_description")]
        refs = {k: validation.optional_ref(share.get(k), k) for k in (
            "share_type", "volume_type", "availability_zone", "share_network_id", "snapshot_id")}
        type_ref = refs["share_type"] if "share_type" in share else refs["volume_type"]
        # Manila reads scheduler_hints from 2.65 (only_host from 2.67) and
        # ignores them below; checked for shape before anything else.
        hints = scheduler_hints.parse(share.get("scheduler_hints"), who,
                                      only_host_allowed=version(req).at_least("2.67")) \
            if version(req).at_least("2.65") else None
        if version(req).at_least("2.48") and refs["availability_zone"] and not refs["snapshot_id"]:
            # The type's availability_zones spec (Manila's check from 2.48).
            self.services.share_types.check_zone(who, type_ref, refs["availability_zone"])
        created = self.services.shares.create(
            who,
            size=share.get("size"),
            share_proto=share.get("share_proto"),
            # Manila prefers the new spelling only when it is non-empty.
            name=names[0] or names[1],
            description=descriptions[0] or descriptions[1],
            share_type=refs["share_type"] if "share_type" in share else refs["volume_type"],
            metadata=share.get("metadata"),
            is_public=is_public,
            availability_zone=refs["availability_zone"],
            share_network_id=refs["share_network_id"],
            snapshot_id=refs["snapshot_id"],
            scheduler_hints=hints,
            # Manila ignores it below 2.31.
            **({"share_group_id": share["share_group_id"]}
               if share.get("share_group_id") is not None and version(req).at_least("2.31") else {}),
        )
        reply(resp, {"share": view.detail(created, self.view_context(req))})


class Share(Resource):
    POLICY = {"on_get": "share:get", "on_put": "share:update", "on_delete": "share:delete"}

    def on_get(self, req, resp, share_id: str) -> None:
        share = self.services.shares.get(caller(req), share_id)
        reply(resp, {"share": view.detail(share, self.view_context(req))})

    def on_put(self, req, resp, share_id: str) -> None:
        """manila/api/v2/shares.py ``update``: no ``share`` is webob's bare 422;
        a display field over 255 characters is Manila's 400."""
        who = caller(req)
        data = body(req)
        if not isinstance(data, dict) or "share" not in data:
            raise UnprocessableEntity("no share in the body", user_message=UNPROCESSABLE_MESSAGE)
        _, data = section(req, "share")
        # Manila ignores keys it cannot update rather than failing on them.
        fields = {k: data[k] for k in UPDATABLE if k in data}
        for key, manila_name in DISPLAY_FIELDS.items():
            value = fields.get(key)
            if isinstance(value, str) and len(value) > DISPLAY_FIELD_MAX:
                raise InvalidInput(f"{key} too long", user_message=(
                    f"Invalid input received: {manila_name} can only be {DISPLAY_FIELD_MAX} characters long."))
        if "is_public" in fields:
            fields["is_public"] = public_flag(fields["is_public"], who, "share:set_public_share")
        share = self.services.shares.update(who, share_id, fields=fields)
        reply(resp, {"share": view.detail(share, self.view_context(req))})

    def on_delete(self, req, resp, share_id: str) -> None:
        group_id = self.services.shares.get(caller(req), share_id).share_group_id
        if group_id is not None:
            # Manila: a share of a group is deleted naming its group.
            given = req.params.get("share_group_id")
            if not given:
                raise InvalidInput("Must provide 'share_group_id' as a request parameter when deleting a share "
                                   "in a share group.")
            if given != group_id:
                raise InvalidInput("The specified 'share_group_id' does not match the share group id of the share.")
        self.services.shares.delete(caller(req), share_id)
        accepted(resp)
