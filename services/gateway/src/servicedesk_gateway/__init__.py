"""gateway: the agents' HTTP API; a query view built from the topics, commands out."""
