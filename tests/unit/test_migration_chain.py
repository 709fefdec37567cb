"""Migrations written on parallel branches must still form one line: two
heads make ``shareflow db upgrade`` refuse to run."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from shareflow.db import migrate


def test_the_migrations_have_one_head_and_each_file_names_its_revision():
    scripts = ScriptDirectory.from_config(migrate._alembic_config())
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    for script in scripts.walk_revisions():
        assert script.path.rsplit("/", 1)[-1].startswith(f"{script.revision}_"), script.path
