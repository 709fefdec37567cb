"""The project access list of a private type: Manila's share type access and
share group type access, which answer alike but for the type's noun. A
public type has no list (404) and cannot be given one (409); a project on
the list twice is a 409, one not on it a 404."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shareflow import policy
from shareflow.db import type_common
from shareflow.db.engine import Database
from shareflow.db.type_common import TypeTables
from shareflow.exceptions import Conflict, NotFound
from shareflow.services.context import Caller


class TypeAccess:
    """``get(session, type_id)`` finds a live type (its own 404); the policy
    rules are ``<rules>:list_project_access``, ``...:add_project_access`` and
    ``...:remove_project_access``."""

    def __init__(self, db: Database, tables: TypeTables, *, get: Callable, rules: str,
                 clock: Callable[[], datetime]):
        self._db = db
        self._tables = tables
        self._get = get
        self._rules = rules
        self._clock = clock

    def _noun(self, *, capital: bool = False) -> str:
        return self._tables.noun.capitalize() if capital else self._tables.noun

    def _private(self, session, type_id: str):
        row = self._get(session, type_id)
        if row.is_public:
            raise Conflict(f"{self._noun(capital=True)} {row.name} is public: type access modification is not "
                           f"applicable to public {self._noun()}.",
                           user_message=f"Type access modification is not applicable to public {self._noun()}.")
        return row

    def projects(self, caller: Caller, type_id: str) -> list[str]:
        policy.enforce(caller, f"{self._rules}:list_project_access")
        with self._db.read() as s:
            row = self._get(s, type_id)
            if row.is_public:
                raise NotFound(f"{self._noun(capital=True)} {row.name} is public: access list not available for "
                               f"public {self._noun()}s.",
                               user_message=f"Access list not available for public {self._noun()}s.")
            return type_common.projects(s, self._tables, row)

    def add(self, caller: Caller, type_id: str, project_id: str) -> None:
        policy.enforce(caller, f"{self._rules}:add_project_access")
        with self._db.write() as s:
            type_common.add_project(s, self._tables, self._private(s, type_id), project_id, now=self._clock())

    def remove(self, caller: Caller, type_id: str, project_id: str) -> None:
        policy.enforce(caller, f"{self._rules}:remove_project_access")
        with self._db.write() as s:
            type_common.remove_project(s, self._tables, self._private(s, type_id), project_id)
