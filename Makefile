# Quick start: `make demo` (set up, then train a tiny YOLO job end to end on the local backend)
# and `make test` (set up, then run the whole test suite, emulators included).
.PHONY: demo test bench serve

demo:
	@scripts/setup-venv.sh worker
	.venv/bin/laxai demo

test:
	@scripts/setup-venv.sh worker,gcp,dev
	@scripts/check-emulators.sh
	.venv/bin/pytest -ra -n 4 --dist loadscope

bench:
	@scripts/setup-venv.sh worker,gcp,dev
	.venv/bin/python -m bench

serve:
	@scripts/setup-venv.sh worker
	.venv/bin/laxai serve
