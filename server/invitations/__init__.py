"""Invitations: a calendar file per participant, invitation and reminder e-mails through a durable outbox."""
