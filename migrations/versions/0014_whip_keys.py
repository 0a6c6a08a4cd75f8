"""whip_keys: stream keys for publishing into a broadcast over WHIP

Revision ID: 0014_whip_keys
Revises: 0013_media_relays
Create Date: 2026-12-05 12:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_whip_keys'
down_revision = '0013_media_relays'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'whip_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('broadcast_id', sa.Integer(), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_hash'),
    )
    with op.batch_alter_table('whip_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_whip_keys_broadcast_id'), ['broadcast_id'], unique=False)


def downgrade():
    with op.batch_alter_table('whip_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_whip_keys_broadcast_id'))
    op.drop_table('whip_keys')
