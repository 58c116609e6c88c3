"""notifier: e-mails reporters and on-call people, and records every delivery."""
