# The two commands a newcomer runs on a fresh machine: `make demo` and `make test`.
# Both bootstrap the virtual environment first (scripts/bootstrap.sh; heavy downloads and the
# Horovod build are cached outside the repository, so warm runs skip them).

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: bootstrap demo test test-fast test-long test-runtimes bench-scale lock clean-lake help

help:
	@echo "make demo   - set up and run the main job end to end on embedded defaults"
	@echo "make test   - set up and run the test suite"

bootstrap:
	@VENV=$(VENV) bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/promolake run-all --env local
	$(VENV)/bin/promolake tables --env local

test: bootstrap
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-fast: bootstrap
	$(PY) -m pytest -m "not slow and not realdata" $(PYTEST_ARGS)

# the long reliability suites: every fault point, 200 fuzz examples per property (about an hour)
test-long: bootstrap
	PROMOLAKE_LONG_TESTS=1 PROMOLAKE_FUZZ_EXAMPLES=200 $(PY) -m pytest tests/test_faults.py \
	  tests/silver/test_fuzz_landing.py tests/common/test_config_fuzz.py tests/test_runtimes.py $(PYTEST_ARGS)

# the runtime check (scripts/runtime_check.py): the wheel installed as the bundle says on a stand-in of every
# target Databricks runtime (runtimes/*.txt), pip's changes checked, every bundle task run on a tiny lake.
# The stand-ins are cached in ~/.cache/promolake/runtimes (the first build takes minutes: torch, Horovod).
test-runtimes: bootstrap
	$(PY) scripts/runtime_check.py $(RUNTIME_CHECK_ARGS)

# the scale curve (bench/scale.py): the whole pipeline at 1e5, 1e6 and 1e7 events (hours on 2 cores)
bench-scale: bootstrap
	$(PY) bench/scale.py

lock: bootstrap
	bash scripts/lock.sh

clean-lake:
	rm -rf lakehouse
