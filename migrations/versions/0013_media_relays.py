"""media_relays: cascade legs of streams to other media workers

Revision ID: 0013_media_relays
Revises: 0012_web_workers
Create Date: 2026-12-05 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_media_relays'
down_revision = '0012_web_workers'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'media_relays',
        sa.Column('stream_id', sa.String(length=64), nullable=False),
        sa.Column('worker', sa.String(length=64), nullable=False),
        sa.Column('origin_peer', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['stream_id'], ['media_streams.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('stream_id', 'worker'),
    )
    with op.batch_alter_table('media_relays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_relays_worker'), ['worker'], unique=False)


def downgrade():
    with op.batch_alter_table('media_relays', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_relays_worker'))
    op.drop_table('media_relays')
