# labbook — two commands on a fresh machine:
#   make run    set up (virtualenv, install, translations, migrations, demo data) and serve
#   make test   set up and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
FLASK := $(VENV)/bin/flask --app labbook
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test bench setup translations messages lint clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

translations: $(STAMP)
	$(VENV)/bin/pybabel compile --statistics -d labbook/translations -D messages

instance/secret_key:
	mkdir -p instance
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

setup: $(STAMP) translations instance/secret_key

# The scheduler runs as its own process beside the dev server (never inside the web
# process); Ctrl-C (or the server exiting) stops both.
run: setup
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	@$(FLASK) scheduler & scheduler=$$!; \
	trap 'kill -TERM $$scheduler 2>/dev/null; wait $$scheduler 2>/dev/null' EXIT INT TERM; \
	$(FLASK) run --host $(HOST) --port $(PORT)

# The feed tests also parse with Mozilla's ical.js (tests/js): installed from the lock file
# when node and npm exist and node_modules is missing or older than the lock; without
# node those tests say why they skip.
test: setup lint
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then \
	    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error \
	      || echo "make: npm ci failed; the ical.js half of tests/feeds will be skipped"; \
	  fi; \
	fi
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

# Re-extract translatable strings and merge them into the zh_Hans catalog.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o labbook/translations/messages.pot .
	$(VENV)/bin/pybabel update -i labbook/translations/messages.pot -d labbook/translations -l zh_Hans

lint: $(STAMP)
	$(VENV)/bin/flake8 labbook tests bench config.py wsgi.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
