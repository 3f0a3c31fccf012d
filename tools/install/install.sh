#!/usr/bin/env bash
# Create (if missing) the project virtualenv and install the whole tested stack into it.
#
#   bash tools/install/install.sh            # uses .venv at the repo root
#   MMRS_VENV=/path/to/venv bash tools/install/install.sh
#
# Steps: torch first (the mmcv ops are tied to its ABI), then onedl-mmcv with compiled ops via
# tools/install/ensure_mmcv.py (cached wheel / shared prebuilt wheel / one-time source build),
# then the rest of the OpenMMLab stack, runtime and test requirements, and mmrs in editable mode.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${MMRS_VENV:-$root/.venv}
cd "$root"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "mmrs needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  python=$(pick_python)
  echo "[install] creating $venv with $python"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# setuptools<82: mmcv's setup.py imports pkg_resources, removed in setuptools 82.
"$py" -m pip install -q "setuptools>=70,<82" wheel
echo "[install] torch"
"$py" -m pip install -q -r requirements/torch.txt
echo "[install] onedl-mmcv with compiled ops"
"$py" tools/install/ensure_mmcv.py
echo "[install] OpenMMLab stack, runtime and test requirements"
"$py" -m pip install -q -r requirements/mminstall.txt -r requirements/runtime.txt \
  -r requirements/tests.txt
echo "[install] mmrs (editable)"
"$py" -m pip install -q --no-deps --no-build-isolation -e .
"$py" -c "from mmcv.ops import nms_rotated, RoIAlignRotated; import mmrs; print('[install] mmrs', mmrs.__version__, 'ready')"
