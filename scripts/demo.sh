#!/usr/bin/env bash
# Set up (idempotent) and run the whole pipeline on the bundled examples with the embedded defaults:
# a local Ray in-process, SQLite at runs/stephanie.sqlite, artifacts under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# group_by=goal: the examples ask the same two questions of several assistants; each becomes one CaseBook.
# reaction_continued=positive: only 7 of the examples' answers get an explicit verdict from the person, all in
# one goal, too few to split without leakage; counting "went on" as a weak positive (as the README's real-sample
# PACS figures do) gives 9 rows in 3 groups, so the demo trains a (smoke-test) critic too.
exec .venv/bin/stephanie pipeline examples --set casebooks.group_by=goal --set verifier.reaction_continued=positive "$@"
