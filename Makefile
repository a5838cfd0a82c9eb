# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup data demo test benchmark clean

setup:
	@bash scripts/bootstrap.sh

data:
	@bash scripts/ensure_data.sh

demo: setup data
	$(BIN)/lava-spikeformer train --model meta_spikeformer_small28 --epochs 1 --amp --no-augment --out runs/demo --threads 2
	$(BIN)/lava-spikeformer export runs/demo/checkpoint.pt --out runs/demo/model.h5
	$(BIN)/lava-spikeformer run-lava runs/demo/model.h5 --tag fixed_pt --granularity fused --images 500 --batch 250
	$(BIN)/lava-spikeformer run-lava runs/demo/model.h5 --tag floating_pt --granularity fine --images 16 --batch 16 --out runs/demo

test: setup data
	$(BIN)/python -m pytest -q tests

benchmark: setup data
	$(BIN)/python benchmarks/fmnist_accuracy.py --out runs/fmnist-benchmark

clean:
	rm -rf runs .pytest_cache
