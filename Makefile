# `make demo`: set up .venv (first time ~30 min, mostly building mmcv) and run the demo.
# `make demo-detection`: the same for detection (Shapes-COCO, RetinaNets).
# `make demo-segmentation`: the same for segmentation (Cityscapes-Streets, PSPNet/DeepLabV3).
# `make test`: set up if needed and run the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
export MMKD_VENV := $(abspath $(VENV))

.PHONY: setup demo demo-detection demo-segmentation test test-all
setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

demo-detection: setup
	$(PY) tools/demo.py --task detection

demo-segmentation: setup
	$(PY) tools/demo.py --task segmentation

# Two pytest-xdist workers (one a core), each test module on one worker so that its
# module fixtures (a trained run, a dataset) are built once; set TEST_WORKERS=0 to
# run in one process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadscope

test: setup
	$(PYTEST)

test-all: setup
	$(PYTEST) -m "slow or not slow"
