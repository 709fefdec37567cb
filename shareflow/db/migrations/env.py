"""Alembic environment: always run with a connection handed in by shareflow.db.migrate."""

from alembic import context

from shareflow.db.migrate import VERSION_TABLE
from shareflow.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # TaskFlow's own migrations use alembic's default table name in the same database.
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
