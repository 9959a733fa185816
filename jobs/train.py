"""PACS critic training as a Ray job: Ray Train workers on the cluster that received the job.

    ray job submit --runtime-env runtime_env.yaml --working-dir . -- \
        python jobs/train.py [--db URL] [--workers 4] [--steps 500] [--set critic.use_gpu=true] [--json]

Rerunning with the same run name (default: derived from the dataset and settings) resumes from the last
checkpoint. Exit status: 0 trained, 2 bad input or configuration.
"""

import sys

from stephanie_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--mode", "critic", *sys.argv[1:]]))
