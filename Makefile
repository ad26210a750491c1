# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use; the project's own files install everything needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,cpu]"
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break imports
	@# beside the CPU torch wheel (docs: environment.md); none is needed.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cutloop models fetch smollm2
	$(BIN)/cutloop run campaigns/demo-cpu.yaml

# The dashboard's browser test drives Debian's Chromium (no browser download).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -q chromium \
		|| { apt-get update -q && apt-get install -y -q chromium; }; }; } \
		|| { echo "the dashboard test needs Chromium: sudo apt-get install chromium" >&2; exit 1; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/round_overhead.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/weight_sync.py

clean:
	rm -rf $(VENV) out
