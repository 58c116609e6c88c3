"""The embedded servicedesk: everything on one machine, nothing installed but Python."""
