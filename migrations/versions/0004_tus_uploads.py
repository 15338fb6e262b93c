"""resumable (tus) uploads, and the staged pieces a job reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tus_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("id_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("pieces", sa.Text(), nullable=False),
        sa.Column("staging_key_id", sa.String(length=64), nullable=True),
        sa.Column("staging_wrapped_key", sa.LargeBinary(length=60), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("max_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("uploader_id", sa.String(length=32), nullable=True),
        sa.Column("quota_day", sa.Date(), nullable=True),
        sa.Column("link_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["uploaders.id"],
            name=op.f("fk_tus_uploads_uploader_id_uploaders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["links.id"],
            name=op.f("fk_tus_uploads_link_id_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tus_uploads")),
        sa.UniqueConstraint("id_hash", name=op.f("uq_tus_uploads_id_hash")),
    )
    op.create_index("ix_tus_uploads_state_expires_at", "tus_uploads", ["state", "expires_at"])
    op.add_column("jobs", sa.Column("staging_pieces", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "staging_pieces")
    op.drop_index("ix_tus_uploads_state_expires_at", table_name="tus_uploads")
    op.drop_table("tus_uploads")
