"""media_streams.video_codec: the codec a stream's video was published in

Revision ID: 0015_media_stream_codec
Revises: 0014_whip_keys
Create Date: 2026-12-05 12:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015_media_stream_codec'
down_revision = '0014_whip_keys'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('media_streams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_codec', sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table('media_streams', schema=None) as batch_op:
        batch_op.drop_column('video_codec')
