"""sla-timer: runs SLA clocks on each agreement's business calendar."""
