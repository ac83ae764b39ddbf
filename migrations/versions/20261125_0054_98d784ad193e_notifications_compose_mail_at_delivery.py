"""Notifications: mail is composed by the delivery job (``mail_pending``), not rendered into
the outbox inside the request that caused it.

Revision ID: 98d784ad193e
Revises: fcedebb3e1e5
Create Date: 2026-11-25 00:54:14.192517

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '98d784ad193e'
down_revision = 'fcedebb3e1e5'
branch_labels = None
depends_on = None


def upgrade():
    # Existing notifications were rendered into the outbox when they were made: false.
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mail_pending', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.create_index('ix_notifications_mail_pending', ['id'], unique=False,
                              sqlite_where=sa.text('mail_pending = 1'),
                              postgresql_where=sa.text('mail_pending'))


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_mail_pending',
                            sqlite_where=sa.text('mail_pending = 1'),
                            postgresql_where=sa.text('mail_pending'))
        batch_op.drop_column('mail_pending')
