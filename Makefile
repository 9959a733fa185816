.PHONY: setup demo test bench clean

setup:          ## create .venv and install stephanie-ray (idempotent)
	scripts/setup.sh

demo:           ## set up, then run the whole pipeline on examples/ (embedded defaults)
	scripts/demo.sh

test:           ## set up, then run the tests (SQLite + local PostgreSQL + local Ray)
	scripts/test.sh

clean:          ## remove run artifacts (not the virtual environment)
	rm -rf runs
