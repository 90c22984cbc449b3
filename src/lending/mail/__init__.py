"""Email: an outbox in the database, and SMTP to deliver it."""
