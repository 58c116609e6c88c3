"""Shared plumbing of the servicedesk services (one copy, not one per service)."""
