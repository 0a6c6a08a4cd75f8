"""web_workers heartbeats; room_connections.worker

Revision ID: 0012_web_workers
Revises: 0011_login_failures_by_address
Create Date: 2026-12-10 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_web_workers'
down_revision = '0011_login_failures_by_address'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'web_workers',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('last_seen', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    # Rows from before have no worker: the first live worker's sweep removes them.
    with op.batch_alter_table('room_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_room_connections_worker', ['worker'], unique=False)


def downgrade():
    with op.batch_alter_table('room_connections', schema=None) as batch_op:
        batch_op.drop_index('ix_room_connections_worker')
        batch_op.drop_column('worker')
    op.drop_table('web_workers')
