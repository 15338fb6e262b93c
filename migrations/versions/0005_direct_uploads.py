"""direct uploads: clients put sealed parts straight into the staging bucket

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "direct_uploads",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("id_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("s3_upload_id", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("segment_log2", sa.Integer(), nullable=False),
        # The blob header, so that a client that lost it can resume (GET answers it).
        sa.Column("header", sa.LargeBinary(length=16), nullable=False),
        sa.Column("staging_key_id", sa.String(length=64), nullable=False),
        sa.Column("staging_wrapped_key", sa.LargeBinary(length=60), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("max_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("uploader_id", sa.String(length=32), nullable=True),
        sa.Column("quota_day", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["uploaders.id"],
            name=op.f("fk_direct_uploads_uploader_id_uploaders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_direct_uploads")),
        sa.UniqueConstraint("id_hash", name=op.f("uq_direct_uploads_id_hash")),
    )
    op.create_index(
        "ix_direct_uploads_last_activity_at", "direct_uploads", ["last_activity_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_direct_uploads_last_activity_at", table_name="direct_uploads")
    op.drop_table("direct_uploads")
