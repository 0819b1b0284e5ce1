"""The connection filter of GET /v1/messages walks an index.

Why: the list is newest first (ORDER BY id DESC). The unique (connection_id,
provider_message_id) index finds a connection's messages but not in id order, so a small
connection in a large store was found by walking every message newest first. With
(connection_id, id) its messages come already in the list's order and a page stops at once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_connection_id", "messages", ["connection_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_connection_id", table_name="messages")
