#!/usr/bin/env bash
# Set up (idempotent) and run the test suite: SQLite and the local PostgreSQL (127.0.0.1:5432), a real local Ray.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
