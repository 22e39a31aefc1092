# The two commands of the README. Each does its own set-up on a fresh machine.
.PHONY: demo test bench setup reliability
demo:          ## the main job end to end on a synthetic plant
	scripts/demo.sh
test:          ## the whole test suite
	scripts/test.sh
bench:         ## pytest-benchmark suites (speed lives here, never in tests)
	scripts/setup.sh && $${EDGE_AD_VENV:-.venv}/bin/python -m pytest bench/ --benchmark-only
setup:
	scripts/setup.sh
reliability:   ## only the bad-input corpus and the fault tests (part of `make test`), with their counts
	scripts/test.sh -m "bad_input or fault" -q -p no:cacheprovider tests/
