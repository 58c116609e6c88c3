# The README's commands. `make up` runs the system, `make test` runs the tests; both
# create .venv from requirements.lock first, so a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e contracts -e libs/runtime -e libs/stack \
	-e services/intake -e services/triage -e services/sla-timer \
	-e services/billing -e services/notifier -e services/gateway

.PHONY: up test test-fast lint typecheck bench schemas asyncapi dashboards lock clean

$(BIN)/.installed: requirements.lock contracts/pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps $(PACKAGES)
	touch $@

up: $(BIN)/.installed
	$(BIN)/python -m servicedesk_stack --demo $(ARGS)

test: $(BIN)/.installed
	$(BIN)/pytest

test-fast: $(BIN)/.installed
	$(BIN)/pytest -m "not integration and not e2e"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy contracts/src libs/runtime/src libs/stack/src services/*/src

bench: $(BIN)/.installed
	$(BIN)/python -u bench/pipeline.py --all --tickets 10000
	$(BIN)/python -u bench/pipeline.py --all --tickets 3000 --rate 100 --only postgres
	$(BIN)/python -u bench/pipeline.py --all --tickets 10000 --rate 1000 --only postgres
	$(BIN)/python -u bench/pipeline.py --tickets 600 --rate 20
	$(BIN)/python -u -m bench.idle
	$(BIN)/python -u -m bench.broker_fetch_wait
	$(BIN)/python -u -m bench.batch_apply
	$(BIN)/python -u -m bench.commit
	$(BIN)/python -u bench/sla_timers.py
	$(BIN)/python -u bench/statements.py
	$(BIN)/python -u -m bench.billing_history
	$(BIN)/python -u -m bench.reference_history
	$(BIN)/python -u -m bench.reference_history --old-store --tickets 100000
	$(BIN)/python -u bench/notifier_mail.py
	$(BIN)/python -u bench/gateway_accept.py
	$(BIN)/python -u -m bench.gateway_view
	$(BIN)/python -u -m bench.mail_in
	$(BIN)/python -u -m bench.mail_in --mails 200 --rate 20
	$(BIN)/python -u bench/fault_suite.py --tickets 10000 --kills 12

schemas: $(BIN)/.installed
	$(BIN)/python -m servicedesk_contracts.schemas

asyncapi: $(BIN)/.installed
	$(BIN)/python -m servicedesk_contracts.asyncapi

dashboards: $(BIN)/.installed
	$(BIN)/python -m servicedesk_stack.dashboards

lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11
	$(BIN)/uv pip compile requirements-runtime.in -c requirements.lock \
		-o requirements-runtime.lock --python-version 3.11

clean:
	rm -rf $(VENV) var
