"""PACS dataset preparation as a Ray job (after score; see jobs/pipeline.py for the whole pipeline).

    ray job submit --runtime-env runtime_env.yaml --working-dir . -- \
        python jobs/prepare.py [--db URL] [--verifier reaction] [--json]

Exit status: 0 prepared (or unchanged and reused), 2 bad input or configuration.
"""

import sys

from stephanie_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
