"""accounts: single-use links (setup, welcome, invitation, reset, sign-up)

Revision ID: 0010_accounts
Revises: 0009_users_profile
Create Date: 2026-12-06 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_accounts'
down_revision = '0009_users_profile'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('account_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('course_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('stamp', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("purpose IN ('setup', 'welcome', 'invite', 'reset', 'signup')", name='ck_account_tokens_purpose'),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_account_tokens_email_purpose', ['email', 'purpose'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_tokens_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_tokens_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_account_tokens_course_id'))
        batch_op.drop_index('ix_account_tokens_email_purpose')

    op.drop_table('account_tokens')
