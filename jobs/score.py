"""Scoring as a Ray job (after casebooks; see jobs/pipeline.py for the whole pipeline).

    ray job submit --runtime-env runtime_env.yaml --working-dir . -- \
        python jobs/score.py [--db URL] [--dimensions a,b] [--scorers x,y] [--rescore] [--json]

Exit status: 0 all scored, 1 some scores failed, 2 bad input or configuration.
"""

import sys

from stephanie_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
