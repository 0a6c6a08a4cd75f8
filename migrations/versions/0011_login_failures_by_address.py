"""login_failures: an index by address, for the per-address sign-in backoff

Revision ID: 0011_login_failures_by_address
Revises: 0010_accounts
Create Date: 2026-12-08 10:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011_login_failures_by_address'
down_revision = '0010_accounts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_remote_addr_at', ['remote_addr', 'at'], unique=False)


def downgrade():
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_remote_addr_at')
