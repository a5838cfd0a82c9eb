# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup data demo test benchmark clean

setup:
	@bash scripts/bootstrap.sh

data:
	@bash scripts/ensure_data.sh

demo: setup data
	$(BIN)/lava-spikeformer train --model meta_spikeformer_small28 --epochs 1 --out runs/demo --threads 2

test: setup data
	$(BIN)/python -m pytest -q tests

benchmark: setup data
	$(BIN)/python benchmarks/fmnist_accuracy.py --out runs/fmnist-benchmark

clean:
	rm -rf runs .pytest_cache
