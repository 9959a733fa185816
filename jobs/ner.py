"""NER indexing as a Ray job (after casebooks; see jobs/pipeline.py for the whole pipeline).

    ray job submit --runtime-env runtime_env.yaml --working-dir . -- \
        python jobs/ner.py [index|search|train-projection|calibrate ...] [--db URL] [--json]

With no action it indexes (``stephanie ner index``). Exit status: 0 done, 1 some scorables failed,
2 bad input or configuration.
"""

import sys

from stephanie_ray.cli import main

ACTIONS = ("index", "search", "train-projection", "calibrate")

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in ACTIONS:
        args = ["index", *args]
    sys.exit(main(["ner", *args]))
