"""storage reservations; the stored-bytes total starts from the blobs already stored

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storage_reservations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("in_flight", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_reservations")),
    )
    # The one row of the total. Uploads still being sealed at the upgrade are not counted
    # (they hold no reservation); the blobs they become are, once sealed.
    op.execute(
        "INSERT INTO storage_usage (id, stored_bytes) "
        "SELECT 1, total FROM (SELECT COALESCE(SUM(ciphertext_size), 0) AS total FROM blobs) t "
        "WHERE NOT EXISTS (SELECT 1 FROM storage_usage WHERE id = 1)"
    )


def downgrade() -> None:
    op.drop_table("storage_reservations")
    op.execute("DELETE FROM storage_usage")
