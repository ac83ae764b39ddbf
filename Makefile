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

run: setup
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	$(FLASK) run --host $(HOST) --port $(PORT)

test: setup lint
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
