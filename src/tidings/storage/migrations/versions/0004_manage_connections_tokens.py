"""Connections can be removed, token names are unique, the store remembers the serve address.

Why: a removed connection must stop taking webhooks while its receipts and messages keep
pointing at it, so it is marked (`removed_at`) rather than deleted, and only connections in
use own their name (a partial unique index), so the name can be used again. Tokens are
revoked by name, so a name must mean one token: existing duplicates get `-<id>` appended.
`store_settings` keeps what `tidings serve` was told (its address) for the URLs other
commands print.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("uq_connections_name", type_="unique")
    op.create_index(
        "uq_connections_name_active",
        "connections",
        ["name"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.execute(
        "UPDATE api_tokens SET name = substr(name, 1, 80) || '-' || CAST(id AS VARCHAR(20)) "
        "WHERE id NOT IN (SELECT min(id) FROM api_tokens GROUP BY name)"
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.create_unique_constraint("uq_api_tokens_name", ["name"])
    op.create_table(
        "store_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_settings")),
    )


def downgrade() -> None:
    op.drop_table("store_settings")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("uq_api_tokens_name", type_="unique")
    op.drop_index("uq_connections_name_active", table_name="connections")
    with op.batch_alter_table("connections") as batch:
        batch.create_unique_constraint("uq_connections_name", ["name"])
        batch.drop_column("removed_at")
