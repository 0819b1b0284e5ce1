"""Every filter of GET /v1/messages walks an index.

Why: the list is newest first (ORDER BY id DESC) and stops after a page. A filter on
provider_message_id alone could not use the unique (connection_id, provider_message_id) index,
and status, channel and since had no index: each scanned the whole table (138 ms and 150 ms at
a million messages). (state, id) and (channel, id) give the matching rows already in id order;
provider_message_id and created_at find their few rows directly. Each index is one more write
per message for the worker, so there are only these four.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_messages_provider_message_id": ["provider_message_id"],
    "ix_messages_state_id": ["state", "id"],
    "ix_messages_channel_id": ["channel", "id"],
    "ix_messages_created_at": ["created_at"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "messages", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="messages")
