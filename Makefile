# The two commands of the README: `make run` and `make test`.
VENV   := .venv
PYTHON := $(VENV)/bin/python
PORT   ?= 8000
WEB    := $(shell sed -n 's/^web: *//p' Procfile)
WORKER := $(shell sed -n 's/^worker: *//p' Procfile)

.PHONY: run test bench lint stop clean translations

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: serve the bot and one worker on 127.0.0.1:$(PORT), with its own Redis and the local outbox
run: $(VENV)/.runtime
	@echo "Accord is starting on http://127.0.0.1:$(PORT) with one sending worker"
	@echo "(Ctrl-C stops both; 'make stop' stops its Redis, whose data stays in instance/)."
	@echo "From another terminal, start a demo round and answer as a voter:"
	@echo "  $(PYTHON) -m bot round start demo examples/contacts.csv --source-type supporters"
	@echo "  $(PYTHON) -m bot outbox +33612980001"
	@echo "  $(PYTHON) -m bot reply +33612980001 \"oui\""
	@echo "  $(PYTHON) -m bot round status demo"
	@echo "  $(PYTHON) -m bot reply +33612980001 \"stop\""
	@echo "Or look instead of reading: the dev phone at http://127.0.0.1:$(PORT)/dev/phone,"
	@echo "and the console at http://127.0.0.1:$(PORT)/console (first: $(PYTHON) -m bot operator add NAME)."
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PORT=$(PORT) BIND=127.0.0.1:$(PORT) \
		sh -c '$(WORKER) & worker=$$!; trap "kill $$worker" EXIT INT TERM; $(WEB)'

## test: the whole suite, against a real Redis the tests start themselves
test: $(VENV)/.dev
	$(VENV)/bin/pytest -q

## bench: the benchmarks in bench/, printing figures with their baselines
bench: $(VENV)/.dev
	$(PYTHON) -m bench.webhook
	$(PYTHON) -m bench.step
	$(PYTHON) -m bench.machine
	$(PYTHON) -m bench.console
	$(PYTHON) -m bench.pipeline
	$(PYTHON) -m bench.states
	$(PYTHON) -m bench.ledger
	$(PYTHON) -m bench.erasure
	$(PYTHON) -m bench.sending
	$(PYTHON) -m bench.national

## translations: extract the pages' strings, merge them into each catalogue, compile (commit the .po and the .mo)
translations: $(VENV)/.runtime
	@mkdir -p instance
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		-o instance/messages.pot .
	$(VENV)/bin/pybabel -q update -i instance/messages.pot -d bot/web/translations
	$(VENV)/bin/pybabel -q compile -d bot/web/translations --statistics

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check bot tests bench

## stop: shut down the embedded Redis started by `make run` (its data stays in instance/)
stop:
	@test -S instance/redis.sock && $(PYTHON) -c "import redis; redis.Redis(unix_socket_path='instance/redis.sock').shutdown()" || true

clean:
	rm -rf $(VENV)
