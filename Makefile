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

test: setup
	$(PY) -m pytest tests -q

test-all: setup
	$(PY) -m pytest tests -q -m "slow or not slow"
