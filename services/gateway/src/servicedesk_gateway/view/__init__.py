"""The gateway's read model: ticket, agreement and statement views kept in the gateway's
own database (SQLite file or PostgreSQL schema), fed exactly once from the event topics.

- `tickets`: what one ticket looks like to agents, and how each event changes it (pure);
- `schema`: the tables and indexes, per engine;
- `projector`: the consumer's handlers, writing the tables;
- `queries`: what the HTTP side reads;
- `timeline`: a ticket's facts in order, told with who and why (pure).
"""
