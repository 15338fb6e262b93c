"""direct uploads keep their blob header, so that a client can resume after losing it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: an upload begun before this revision has none and cannot be resumed by a
    # client that lost its header (it starts over); it can still be completed.
    op.add_column("direct_uploads", sa.Column("header", sa.LargeBinary(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("direct_uploads", "header")
