#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with stephanie-ray (editable) and its test tools.
# Re-running it is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${STEPHANIE_VENV:-.venv}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "stephanie-ray needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.stephanie-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import stephanie_ray' 2>/dev/null; then
  exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: on these machines 2.13.0 is a CPU wheel on disk; an unpinned torch (pulled in by
# transformers/accelerate) would download a multi-GB CUDA build. Clusters install their own (cluster.yaml).
"$VENV/bin/python" -m pip install -q "torch==${STEPHANIE_TORCH_VERSION:-2.13.0}"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "$want" > "$stamp"
echo "stephanie-ray installed in $VENV" >&2
