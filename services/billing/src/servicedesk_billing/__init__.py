"""billing: agreements, time entries and monthly statements."""
