#!/usr/bin/env bash
# Set up (idempotent) and run the whole pipeline on the bundled examples with the embedded defaults:
# a local Ray in-process, SQLite at runs/stephanie.sqlite, artifacts under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/stephanie pipeline examples "$@"
