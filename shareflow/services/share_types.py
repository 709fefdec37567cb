"""Share types (admin-managed) and their extra specs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from shareflow.config import Config
from shareflow.db import share_types as types_db
from shareflow.db.engine import Database
from shareflow.db.models import ShareType
from shareflow.domain import validation
from shareflow.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from shareflow.services.context import Caller


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Forbidden("Policy doesn't allow this operation to be performed.")


class ShareTypeService:
    def __init__(self, config: Config, db: Database, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._config = config
        self._db = db
        self._clock = clock
        self._new_id = new_id

    def list(self, caller: Caller, *, is_public: str | None = None) -> list[ShareType]:
        with self._db.read() as s:
            types = types_db.list_(s, include_private=caller.is_admin)
        if is_public is not None and caller.is_admin and is_public.lower() != "all":
            wanted = validation.boolean(is_public, "is_public")
            types = [t for t in types if t.is_public == wanted]
        return types

    def get(self, caller: Caller, ref: str) -> ShareType:
        with self._db.read() as s:
            st = types_db.get_by_name_or_id(s, ref)
        if not st.is_public and not caller.is_admin:
            raise NotFound(f"Share type {ref} could not be found.")
        return st

    def default(self, caller: Caller) -> ShareType:
        with self._db.read() as s:
            st = types_db.get_by_name(s, self._config.default_share_type)
        if st is None:
            raise NotFound("Default share type could not be found.")
        return st

    def create(self, caller: Caller, *, name, extra_specs, description=None, is_public=True) -> ShareType:
        _require_admin(caller)
        name = validation.share_type_name(name)
        specs = validation.required_extra_specs(validation.extra_specs(extra_specs))
        description = validation.optional_text(description, "Share type description", 255)
        is_public = validation.boolean(is_public, "share_type_access:is_public")
        with self._db.write() as s:
            return types_db.create(
                s, now=self._clock(), name=name, specs=specs, description=description,
                is_public=is_public, type_id=self._new_id(),
            )

    def delete(self, caller: Caller, type_id: str) -> None:
        _require_admin(caller)
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            if types_db.in_use(s, st.id):
                raise InvalidInput(f"Share Type {type_id} deletion is not allowed with shares present with the type.")
            types_db.delete(s, st, now=self._clock())

    def extra_specs(self, caller: Caller, type_id: str) -> dict[str, str]:
        return self.get(caller, type_id).specs()

    def set_extra_specs(self, caller: Caller, type_id: str, specs) -> dict[str, str]:
        _require_admin(caller)
        specs = validation.extra_specs(specs)
        if not specs:
            raise InvalidInput("Extra specs must not be empty.")
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            if validation.DHSS in specs and types_db.in_use(s, st.id):
                raise Conflict(f"Cannot change {validation.DHSS} of a share type in use.")
            types_db.set_specs(s, st, specs, now=self._clock())
            return st.specs()

    def unset_extra_spec(self, caller: Caller, type_id: str, key: str) -> None:
        self.unset_extra_specs(caller, type_id, [key])

    def unset_extra_specs(self, caller: Caller, type_id: str, keys) -> None:
        """Several keys in one transaction (``shareflow type unset``): a
        required or missing key among them leaves every spec as it was."""
        _require_admin(caller)
        for key in keys:
            if key == validation.DHSS:
                raise Forbidden(f"Required extra specification '{key}' cannot be deleted.")
        with self._db.write() as s:
            st = types_db.get(s, type_id)
            for key in dict.fromkeys(keys):
                types_db.unset_spec(s, st, key, now=self._clock())
