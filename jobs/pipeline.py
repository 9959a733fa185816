"""The whole pipeline as a Ray job.

    ray job submit --runtime-env runtime_env.yaml --working-dir . -- \
        python jobs/pipeline.py [--db URL] [--config FILE] [--set k=v ...] [--stages a,b] [PATHS...]

Inside a job Ray sets RAY_ADDRESS, so the stages run on the cluster that received the job.
Exit status: 0 all succeeded, 1 some items failed, 2 bad input or configuration.
"""

import sys

from stephanie_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
