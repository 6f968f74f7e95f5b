#!/usr/bin/env bash
# Create (or complete) the project's isolated environment in $MMKD_VENV (default: .venv).
#
# Every step first checks whether its result is already there and skips it if so, so a
# second run only verifies. A failing step stops the script with its name and exit code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMKD_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
JOBS="${MAX_JOBS:-$(nproc)}"

log() { printf '[setup] %s\n' "$*"; }

# run_step NAME CHECK_CMD INSTALL_CMD: skip when CHECK_CMD succeeds, else run INSTALL_CMD
# and verify with CHECK_CMD again.
run_step() {
    local name="$1" check="$2" install="$3" start
    if [ -x "$PY" ] && bash -c "$check" >/dev/null 2>&1; then
        log "step '$name': already done, skipping"
        return 0
    fi
    log "step '$name': running ..."
    start=$(date +%s)
    if ! bash -c "$install"; then
        log "step '$name' FAILED (see the messages above)."
        exit 1
    fi
    if ! bash -c "$check"; then
        log "step '$name' FAILED: it ran but its result does not import or verify."
        exit 1
    fi
    log "step '$name': done in $(( $(date +%s) - start )) s"
}

PIP="\"$PY\" -m pip install --disable-pip-version-check -c \"$CONSTRAINTS\""

run_step venv \
    "test -x '$PY'" \
    "python3 -m venv '$VENV'"

run_step build-tools \
    "'$PY' -c 'import setuptools, wheel, ninja, sys; v=int(setuptools.__version__.split(\".\")[0]); sys.exit(not 77 <= v < 82)'" \
    "$PIP --upgrade pip 'setuptools>=77,<82' wheel ninja"

# The registry's torch build: --isolated ignores pip configuration that may point at a
# local CPU-only torch wheel, which torchvision's compiled ops cannot load against.
run_step torch \
    "'$PY' -c 'import torch, torchvision, torchvision.ops as o; assert \"+cpu\" not in torch.__version__; o.nms(torch.zeros(1,4), torch.zeros(1), 0.5)'" \
    "$PIP --isolated \${PIP_CERT:+--cert \"\$PIP_CERT\"} torch==2.13.0 torchvision==0.28.0"

run_step openmmlab \
    "'$PY' -c 'import mmengine, ftfy, regex, numpy, cv2, pytest, xdist; from importlib.metadata import version as v; [v(p) for p in (\"mmdet\",\"mmsegmentation\",\"mmpretrain\")]; assert numpy.__version__ < \"2\"'" \
    "$PIP -r '$ROOT/requirements/runtime.txt' -r '$ROOT/requirements/tests.txt'"

# mmcv with its compiled ops, built against the environment's torch (about 25 min on
# 2 cores the first time; pip caches the wheel, so later environments take seconds).
run_step mmcv \
    "'$PY' -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == \"2.1.0\"'" \
    "MMCV_WITH_OPS=1 MAX_JOBS=$JOBS $PIP --no-build-isolation mmcv==2.1.0"

run_step mmkd_ext \
    "cd / && '$PY' -c 'import mmkd_ext, mmdet.models, mmseg.models, mmpretrain.models'" \
    "$PIP --no-build-isolation --no-deps -e '$ROOT'"

log "environment ready: $VENV"
