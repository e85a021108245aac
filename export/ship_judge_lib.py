"""Trains, measures and writes the shipped digit judge (export/ship_judge.py).

The judge's record (`record.json` beside `model.weights.h5`):

    architecture   {"task": "judge", "filters", "units"}: what
                   `draw_tf.pretrained.load` builds
    image_shape    [30, 30, 1]
    validation     accuracy on the validation digits' crops, per epoch
    test           accuracy and error rate on the 10,000 test digits,
                   each in a crop shifted by 0-2 pixels (seed TEST_SEED)
    sample_subset  the predictions on the first 200 test crops, which the
                   tests check the shipped weights against
    training       epochs, wall seconds, the CPU kind, the command
"""

import json
import os
import time

import numpy as np
from absl import logging

from draw_tf import backend, judge, machine, pretrained
from draw_tf import data as data_lib
from draw_tf.config import TrainConfig

# The shifts of the test crops: fixed, so the record's accuracy can be
# measured again.
TEST_SEED = 1
VALIDATION_SEED = 2
SUBSET_SIZE = 200


def digit_splits(data_dir: str = "") -> data_lib.Splits:
    """MNIST's labeled grey digits: train 50,000, validation 10,000, test.

    Raises:
      DataError: if the idx files can't be found or read.
    """
    config = TrainConfig(
        workdir="-",
        task="classify",
        dataset="mnist",
        data_dir=data_dir,
        binarization="none",
    )
    return data_lib.load_splits(config)


def ship(
    data_dir: str = "",
    epochs: int = 8,
    seed: int = 0,
    name: str = "digit_judge",
    output_dir: str = pretrained.DIRECTORY,
    command: str = "",
) -> dict:
    """Trains the judge, measures it and writes `<output_dir>/<name>/`.

    Returns:
      The record written.
    """
    splits = digit_splits(data_dir)
    validation_crops = judge.judge_crops(splits.validation, VALIDATION_SEED)
    test_crops = judge.judge_crops(splits.test, TEST_SEED)
    curve = []

    def on_epoch(epoch, model):
        value = judge.accuracy(
            model, validation_crops, splits.validation_labels
        )
        curve.append({"epoch": epoch + 1, "accuracy": value})
        logging.info("epoch %d: validation accuracy %.4f", epoch + 1, value)

    started = time.perf_counter()
    model = judge.train_judge(
        splits.train,
        splits.train_labels,
        epochs=epochs,
        seed=seed,
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - started
    test_accuracy = judge.accuracy(model, test_crops, splits.test_labels)
    directory = os.path.join(output_dir, name)
    os.makedirs(directory, exist_ok=True)
    model.save_weights(os.path.join(directory, pretrained.WEIGHTS_FILE))
    record = {
        "name": name,
        "description": "The digit judge of the instructed models: a small "
        "CNN reading 30 x 30 crops (draw_tf.judge.DigitJudge).",
        "architecture": {
            "task": "judge",
            "filters": model.filters,
            "units": model.units,
        },
        "image_shape": [judge.CROP_SIZE, judge.CROP_SIZE, 1],
        "validation": {
            "accuracy": curve[-1]["accuracy"],
            "num_examples": len(splits.validation),
            "crop_seed": VALIDATION_SEED,
            "curve": curve,
        },
        "test": {
            "accuracy": test_accuracy,
            "error_rate": 1.0 - test_accuracy,
            "num_examples": len(splits.test),
            "crop_seed": TEST_SEED,
            "crops": "draw_tf.judge.judge_crops(test digits, seed=crop_seed)",
        },
        "sample_subset": {
            "size": SUBSET_SIZE,
            "predictions": judge.predict(
                model, test_crops[:SUBSET_SIZE]
            ).tolist(),
        },
        "training": {
            "epochs": epochs,
            "seed": seed,
            "wall_seconds": round(seconds, 1),
            "backend": backend.name(),
            "machine": machine.cpu_description(),
            "command": command,
        },
    }
    with open(os.path.join(directory, pretrained.RECORD_FILE), "w") as file:
        json.dump(record, file, indent=2, sort_keys=True)
        file.write("\n")
    return record


def test_accuracy(model, data_dir: str = "") -> float:
    """A judge's accuracy on the record's test crops."""
    splits = digit_splits(data_dir)
    crops = judge.judge_crops(splits.test, TEST_SEED)
    return judge.accuracy(model, crops, np.asarray(splits.test_labels))
