# The two set-up commands: `make run` (install, then the dashboard) and `make test` (install, then every test).
# `make serve` serves a room or a lab: viewer mode on every interface (README, "Serving Sycoscope to a room").
PYTHON ?= python3
PORT ?= 8501
ADDRESS ?= 0.0.0.0
# The names visitors type to reach a served dashboard, e.g. HOSTS=sycoscope.lab.example ('*': any).
HOSTS ?= *
STAMP := data/.installed

.PHONY: run serve test install install-test bench lint

run: install
	$(PYTHON) -m streamlit run app.py --server.port $(PORT) --server.address 127.0.0.1

serve: install
	SYCOSCOPE_MODE=viewer $(PYTHON) -m streamlit run app.py --server.port $(PORT) --server.address $(ADDRESS) \
		--server.allowedHosts '$(HOSTS)'

test: install-test
	$(PYTHON) -m pytest -q

# pip skips what is already installed; the stamp only saves the time of asking again.
install: $(STAMP)
$(STAMP): requirements.txt
	$(PYTHON) -m pip install -q -r requirements.txt
	@mkdir -p data && touch $@

install-test: install
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core)
	@# PostgreSQL for the DuckLake tests (tests/postgres.py finds Debian's /usr/lib/postgresql/<ver>/bin)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq postgresql)
	$(PYTHON) -m pip install -q -r requirements-dev.txt

bench: install-test
	$(PYTHON) bench/run_all.py

lint:
	ruff check . && ruff format --check .
