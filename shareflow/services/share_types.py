"""Share types (admin-managed) and their extra specs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from shareflow import policy
from shareflow.config import Config
from shareflow.db import share_groups as groups_db
from shareflow.db import share_types as types_db
from shareflow.db import type_common
from shareflow.db.engine import Database
from shareflow.db.models import ShareType
from shareflow.domain import validation
from shareflow.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from shareflow.services.availability_zones import resolve as resolve_zone
from shareflow.services.context import Caller
from shareflow.services.type_access import TypeAccess


def visible_type(session, caller: Caller, ref: str) -> ShareType:
    """The live type ``ref`` (name or id) as ``caller`` sees it: a private
    type its project has no access to is not found, as an unknown one is
    (Manila's "Share type not found." when a share is created with it)."""
    st = types_db.get_by_name_or_id(session, ref)
    if not type_common.visible_to(session, types_db.TYPE_TABLES, st, None if caller.is_admin else caller.project_id):
        raise NotFound(f"share type {ref!r} not visible to {caller.project_id}",
                       user_message=f"Share type {ref} could not be found.")
    return st


class ShareTypeService:
    def __init__(self, config: Config, db: Database, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._config = config
        self._db = db
        self._clock = clock
        self._new_id = new_id
        #: The project access lists of private types.
        self.access = TypeAccess(db, types_db.TYPE_TABLES, get=types_db.get, rules="share_type", clock=clock)

    def list(self, caller: Caller, *, is_public: str | None = None) -> list[ShareType]:
        """Members: public types and the private ones their project may use.
        Admins: ``is_public`` as Manila parses it (``true``: public and the
        admin project's private ones, ``false``: private, ``all``/None: all)."""
        if not caller.is_admin:
            public, project = True, caller.project_id
        elif is_public is None or is_public.lower() == "all":
            public, project = None, None
        else:
            public, project = validation.boolean(is_public, "is_public"), caller.project_id
        with self._db.read() as s:
            return type_common.list_types(s, types_db.TYPE_TABLES, public=public, project_id=project)

    def get(self, caller: Caller, ref: str) -> ShareType:
        with self._db.read() as s:
            return visible_type(s, caller, ref)

    def check_zone(self, caller: Caller, ref: str | None, zone: str) -> None:
        """Manila 2.48: a share asked for in a zone its type (``ref``, None:
        the default type) does not list in ``availability_zones`` is a 400;
        an unknown zone is a 404 first, an unknown type a 404 too."""
        name = resolve_zone(self._config, zone)
        with self._db.read() as s:
            if ref is None:
                st = types_db.get_by_name(s, self._config.default_share_type)
                if st is None:
                    return  # the share create says what is wrong
            else:
                st = visible_type(s, caller, ref)
            zones = validation.zones_of(st.specs())
        if zones and name not in zones:
            raise InvalidInput(f"Share type {ref or st.name} is not supported within the availability zone "
                               f"chosen {zone}.")

    def default(self, caller: Caller) -> ShareType:
        with self._db.read() as s:
            st = types_db.get_by_name(s, self._config.default_share_type)
        if st is None:
            raise NotFound("Default share type could not be found.")
        return st

    def create(self, caller: Caller, *, name, extra_specs, description=None, is_public=True) -> ShareType:
        policy.enforce(caller, "share_type:create")
        name = validation.share_type_name(name)
        specs = validation.required_extra_specs(validation.extra_specs(extra_specs, numbers=True))
        description = validation.optional_text(description, "Share type description", 255)
        is_public = validation.boolean(is_public, "share_type_access:is_public")
        with self._db.write() as s:
            return types_db.create(
                s, now=self._clock(), name=name, specs=specs, description=description,
                is_public=is_public, type_id=self._new_id(),
            )

    def update(self, caller: Caller, type_id: str, *, name=None, description=None,
               is_public=None) -> ShareType:
        """Manila 2.50's ``PUT /types/{id}``: name, description (``""``
        clears it) and visibility, any of them; a name another live type has
        is a 409."""
        policy.enforce(caller, "share_type:update")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise InvalidInput("Share type name cannot be empty.")
            if len(name) > 255:
                raise InvalidInput("Share type name cannot be greater than 255 characters in length.")
            name = validation.share_type_name(name)
        if isinstance(description, str) and len(description) > 255:
            raise InvalidInput("Share type description cannot be greater than 255 characters in length.")
        description = validation.optional_text(description, "Share type description", 255)
        if is_public is not None:
            try:
                is_public = validation.boolean(is_public, "share_type_access:is_public")
            except InvalidInput:
                raise InvalidInput("share_type_access:is_public has a non-boolean value.") from None
        if name is None and description is None and is_public is None:
            raise InvalidInput("Specify share type name, description, share_type_access:is_public "
                               "or a combination thereof.")
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            if name and types_db.rename_conflicts(s, st, name):
                raise Conflict(f"Share Type {name} already exists.")
            if name:
                st.name = name
            if description is not None:
                st.description = description or None
            if is_public is not None:
                st.is_public = is_public
            st.updated_at = self._clock()
            s.flush()
            return st

    def delete(self, caller: Caller, type_id: str) -> None:
        policy.enforce(caller, "share_type:delete")
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            if types_db.in_use(s, st.id):
                raise InvalidInput(f"Share Type {type_id} deletion is not allowed with shares present with the type.")
            if groups_db.types_with_share_type(s, st.id):
                # Manila's share_type_destroy: live share group types hold it too.
                raise InvalidInput(f"Target share type with id {type_id} is still in use by share group types.")
            types_db.delete(s, st, now=self._clock())

    def extra_specs(self, caller: Caller, type_id: str) -> dict[str, str]:
        return self.get(caller, type_id).specs()

    def set_extra_specs(self, caller: Caller, type_id: str, specs) -> dict[str, str]:
        policy.enforce(caller, "share_types_extra_spec:update")
        specs = validation.extra_specs(specs)
        if not specs:
            raise InvalidInput("Extra specs must not be empty.")
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            if validation.DHSS in specs and types_db.in_use(s, st.id):
                raise Conflict(f"Cannot change {validation.DHSS} of a share type in use.")
            type_common.set_specs(s, types_db.TYPE_TABLES, st, specs, now=self._clock())
            return st.specs()

    def unset_extra_spec(self, caller: Caller, type_id: str, key: str) -> None:
        self.unset_extra_specs(caller, type_id, [key])

    def unset_extra_specs(self, caller: Caller, type_id: str, keys) -> None:
        """Several keys in one transaction (``shareflow type unset``): a
        required or missing key among them leaves every spec as it was."""
        policy.enforce(caller, "share_types_extra_spec:delete")
        for key in keys:
            if key == validation.DHSS:
                raise Forbidden(f"Required extra specification '{key}' cannot be deleted.")
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            for key in dict.fromkeys(keys):
                if not type_common.unset_spec(s, types_db.TYPE_TABLES, st, key, now=self._clock()):
                    raise NotFound(f"Share type extra spec {key} could not be found.")
