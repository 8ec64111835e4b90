# The README's two commands: `make demo` (set up, then the main job) and `make test` (set up, then the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
IGPG := $(VENV)/bin/igpg
STAMP := $(VENV)/.installed-igpg

.PHONY: setup demo test bench-zoo clean-venv

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: these wheels are on this machine's disk (DESIGN.md, facts of this machine)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev,eval,retrieval]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(IGPG) zoo build --config configs/zoo/tiny.yaml --out zoos/tiny
	$(IGPG) zoo info zoos/tiny

# pytest exits 5 when no test ran: that is a failure here, not a success
test: setup
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no test ran" >&2; exit 1; fi; exit $$rc

bench-zoo: setup
	$(PY) eval/bench_zoo.py

clean-venv:
	rm -rf $(VENV)
