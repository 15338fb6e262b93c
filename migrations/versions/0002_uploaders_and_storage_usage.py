"""uploaders, their daily usage, links' uploader and expiry ceiling, the stored-bytes total

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "uploaders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("max_bytes_per_day", sa.BigInteger(), nullable=True),
        sa.Column("max_file_size", sa.BigInteger(), nullable=True),
        sa.Column("max_ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("max_live_links", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploaders")),
        sa.UniqueConstraint("name", name=op.f("uq_uploaders_name")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_uploaders_key_hash")),
    )
    op.create_table(
        "uploader_usage",
        sa.Column("uploader_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["uploaders.id"],
            name=op.f("fk_uploader_usage_uploader_id_uploaders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("uploader_id", "day", name=op.f("pk_uploader_usage")),
    )
    op.create_table(
        "storage_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_usage")),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uploader_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("max_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_links_uploader_id_uploaders"),
            "uploaders",
            ["uploader_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_links_uploader_id", ["uploader_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_uploader_id")
        batch_op.drop_constraint(batch_op.f("fk_links_uploader_id_uploaders"), type_="foreignkey")
        batch_op.drop_column("max_expires_at")
        batch_op.drop_column("uploader_id")
    op.drop_table("storage_usage")
    op.drop_table("uploader_usage")
    op.drop_table("uploaders")
