"""Notifications: an in-app list per user and a mail outbox written in the same
transaction as the change that causes it, delivered over SMTP by the scheduler."""
