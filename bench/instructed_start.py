r"""How an instructed model started from the class-conditional one fares.

    KERAS_BACKEND=jax python bench/instructed_start.py \
        --data_dir=../shared/data/mnist --steps=150

The choices of `configs/instructed_mnist.flags`, measured side by side:
for each variant (the LSTM states carried from turn to turn or not; the
learned blank canvas starting at logit -9, or at DRAW's 0, grey) an
instructed model with place frames (60 x 60, 3 turns, conditional_mnist's
sizes) takes every variable of the shipped `conditional_mnist`
(`draw_tf.warm_start`), then trains --steps steps of Adam (--learning_rate,
batches of 100 new training episodes, dynamic binarization). Before and
after, it draws the first --episodes validation episodes (the last 10,000
training digits) from z ~ N(0, I) and the shipped judge reads them. Prints
one JSON line per variant: the judge's instruction accuracy and
preservation per turn at step 0 and after, the training -ELBO (nats per
episode) of the last 50 steps, and the seconds taken.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from draw_tf import (  # noqa: E402
    conditional_model,
    data,
    instructed_mnist,
    machine,
    pretrained,
    warm_start,
)
from draw_tf import judge as judge_lib  # noqa: E402

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST idx files (e.g. ../shared/data/mnist)."
)
_STEPS = flags.DEFINE_integer("steps", 150, "Training steps per variant.")
_EPISODES = flags.DEFINE_integer(
    "episodes", 500, "Validation episodes drawn and judged."
)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 3e-4, "Adam's rate.")
_VARIANTS = flags.DEFINE_list(
    "variants",
    "nocarry:-9,carry:-9,nocarry:0",
    "Variants, each carry or nocarry : initial canvas logit.",
)
VALIDATION_SIZE = 10_000
BATCH_SIZE = 100


def _digits(data_dir: str):
    """(train digits, labels, validation digits, labels), as train.py's."""
    images = data.read_idx(
        data.find_idx_file(data_dir, "train-images-idx3-ubyte")
    )
    labels = data.read_idx(
        data.find_idx_file(data_dir, "train-labels-idx1-ubyte"), 2049
    )
    cut = len(images) - VALIDATION_SIZE
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def _scores(model, judge, episodes) -> dict:
    """The judge's scores of the episodes drawn from z ~ N(0, I)."""
    drawn = model.generate(episodes.classes, episodes.places, seed=[1, 2])
    scores = judge_lib.judge_episodes(
        judge, np.asarray(drawn["images"]), episodes.classes, episodes.places
    )
    return {key: np.round(value, 4).tolist() for key, value in scores.items()}


def measure(variant: str, source, judge, digits) -> dict:
    """One variant's row: the judge's scores before and after training."""
    import keras

    carry, canvas_logit = variant.split(":")
    if carry not in ("carry", "nocarry"):
        raise app.UsageError(f"--variants: {variant!r} is not carry:LOGIT.")
    train, train_labels, validation, validation_labels = digits
    keras.utils.set_random_seed(0)
    model = conditional_model.ConditionalDrawModel(
        (60, 60, 1),
        num_turns=3,
        num_places=4,
        steps_per_turn=16,
        encoder_units=256,
        decoder_units=256,
        latent_size=100,
        read_glimpse_size=5,
        write_patch_size=5,
        condition_size=32,
        carry_states=carry == "carry",
        place_frames=True,
    )
    new_variables = warm_start.copy_shared_variables(
        model, source, "conditional_mnist"
    )
    model.initial_canvas.assign(np.full((60, 60, 1), float(canvas_logit)))
    model.compile(
        optimizer=keras.optimizers.Adam(
            _LEARNING_RATE.value, global_clipnorm=10
        )
    )
    episodes = instructed_mnist.episodes(
        validation, validation_labels, _EPISODES.value, seed=7
    )
    row = dict(
        variant=variant,
        new_variables=new_variables,
        start=_scores(model, judge, episodes),
    )
    rng = np.random.default_rng(1)
    losses, started = [], time.time()
    for step in range(_STEPS.value):
        batch = instructed_mnist.episodes(
            train, train_labels, BATCH_SIZE, seed=step
        )
        targets = rng.random(batch.targets.shape) < batch.targets / 255.0
        logs = model.train_on_batch(
            {
                "targets": targets.astype("float32"),
                "classes": batch.classes,
                "places": batch.places,
            },
            return_dict=True,
        )
        losses.append(float(logs["loss"]))
    row.update(
        steps=_STEPS.value,
        seconds=round(time.time() - started),
        train_negative_elbo_last_50=round(float(np.mean(losses[-50:])), 1),
        after=_scores(model, judge, episodes),
    )
    return row


def main(argv):
    """Prints the machine, then a row per variant."""
    del argv
    if not _DATA_DIR.value:
        raise app.UsageError("--data_dir: expected the MNIST idx files.")
    digits = _digits(_DATA_DIR.value)
    source = pretrained.load("conditional_mnist")
    judge = pretrained.load("digit_judge")
    print(json.dumps({"machine": machine.cpu_description()}), flush=True)
    for variant in _VARIANTS.value:
        print(json.dumps(measure(variant, source, judge, digits)), flush=True)


if __name__ == "__main__":
    app.run(main)
