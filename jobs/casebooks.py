"""CaseBook building as a Ray job (after an import; see jobs/pipeline.py for the whole pipeline).

    ray job submit --runtime-env runtime_env.yaml --working-dir . -- \
        python jobs/casebooks.py [--db URL] [--mode turn] [--group-by goal] [--threshold 0.55] [--json]

Exit status: 0 all converted, 1 some conversations failed, 2 bad input or configuration.
"""

import sys

from stephanie_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["casebooks", "build", *sys.argv[1:]]))
