"""One worker of the two-worker test (tests/trainer_test.py).

Trains the tiny synthetic config under MultiWorkerMirroredStrategy (the
cluster comes from TF_CONFIG) and saves the final weights to
`<output>.npz`.

Usage: python tests/multi_worker_main.py WORKDIR OUTPUT
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from draw_tf import data  # noqa: E402
from draw_tf.tensorflow import (
    distributed_engine,  # noqa: E402
    distribution,  # noqa: E402
)
from tests.tiny_run import tiny_config  # noqa: E402


def main(workdir: str, output: str) -> None:
    config = tiny_config(
        workdir,
        log_every_steps=2,
        checkpoint_every_steps=3,
        eval_every_steps=3,
        max_eval_examples=16,
        importance_samples=0,
    )
    strategy = distribution.make_strategy()
    splits = data.load_splits(config)
    experiment = distributed_engine.make_trainer(config, strategy, splits)
    experiment.train()
    weights = [variable.numpy() for variable in experiment.model.weights]
    np.savez(
        output,
        *weights,
        step=experiment.step,
        replicas=strategy.num_replicas_in_sync,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
