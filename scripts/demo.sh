#!/usr/bin/env bash
# Set up (idempotent) and run the whole pipeline on the bundled examples with the embedded defaults:
# a local Ray in-process, SQLite at runs/stephanie.sqlite, artifacts under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# group_by=goal: the examples ask the same two questions of several assistants; each becomes one CaseBook.
exec .venv/bin/stephanie pipeline examples --set casebooks.group_by=goal "$@"
