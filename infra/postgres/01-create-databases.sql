-- Run once by the postgres image's entrypoint on an empty data directory
-- (mounted at /docker-entrypoint-initdb.d by docker-compose.yml).
-- One database per service: no service reads another's data (the gateway's holds its outbox).
-- Each service creates its own schema (named after it) inside its database on start-up.
CREATE DATABASE intake;
CREATE DATABASE triage;
CREATE DATABASE sla_timer;
CREATE DATABASE billing;
CREATE DATABASE notifier;
CREATE DATABASE gateway;
