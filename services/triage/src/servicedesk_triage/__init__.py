"""triage: decides each ticket's category and priority with its agreement's matrix."""
