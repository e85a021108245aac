"""Ships a trained workdir's model with the package (`draw_tf.pretrained`).

Writes `draw_tf/pretrained_models/<name>/` (or under `--output_dir`):
`model.weights.h5` and `record.json`, the latter with the test bounds
measured here on the whole test split, the bound of a fixed test subset
(what the tests check the shipped weights against), the training steps,
epochs, wall time and the CPU kinds it trained on (`machines.jsonl`), the
validation curve and the commands that reproduce it all.

The directory is written beside its final place and renamed into it, so a
failed ship leaves the shipped model as it was.

`remeasure` measures a shipped model's test bounds again (e.g. with more
importance samples, after a ship that skipped them) from its own weights,
which it leaves byte for byte as they are: only `record.json` changes.
"""

import dataclasses
import datetime
import glob
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from draw_tf import (
    bounds,
    judge,
    loading,
    machine,
    mnist_sample,
    pretrained,
    warm_start,
)
from draw_tf import config as config_lib
from draw_tf import data as data_lib
from draw_tf import workdir as workdir_layout

# A downtime longer than this between two summaries is not training time.
_MAX_SUMMARY_GAP_SECONDS = 15 * 60
# The paper's test numbers (Table 1, Table 2) where it gives one.
PAPER_RESULTS = {
    ("generate", "mnist", True): {"negative_elbo": 80.97},
    ("generate", "mnist", False): {"negative_elbo": 87.40},
    ("classify", "cluttered_mnist", True): {"error_rate": 0.0336},
}


class ShipError(config_lib.ConfigError):
    """The workdir can't be shipped: a one-line error."""


def read_workdir_config(workdir: str, **overrides) -> config_lib.TrainConfig:
    """The TrainConfig a workdir was trained with (its config.json).

    Read for anything but training (overrides' mode), a warm restart's
    --init_from is left out: its weights are its checkpoints now, and its
    origin stays in its init_from.json.
    """
    path = workdir_layout.path(workdir, workdir_layout.CONFIG)
    try:
        with open(path) as file:
            saved = json.load(file)["config"]
    except (OSError, ValueError, KeyError) as error:
        raise ShipError(
            f"--workdir={workdir}: no readable config.json ({error})."
        ) from None
    if overrides.get("mode", saved.get("mode", "train")) != "train":
        overrides.setdefault("init_from", "")
    return config_lib.TrainConfig.from_dict(saved, **overrides).validate()


def _summary_events(workdir: str) -> list[tuple[float, int]]:
    """(wall time, step) of each summary in the TensorBoard events, sorted."""
    events = []
    for path in glob.glob(
        os.path.join(workdir, workdir_layout.TENSORBOARD, "events.*")
    ):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            if event.HasField("summary"):
                events.append((event.wall_time, int(event.step)))
    return sorted(events)


def _keras_training_state(workdir: str) -> dict | None:
    return workdir_layout.read_json(workdir, workdir_layout.KERAS_STATE)


def training_wall_seconds(workdir: str) -> float:
    """Seconds of training in the workdir's TensorBoard events.

    The sum of the gaps between consecutive events, leaving out gaps over
    15 minutes (the run was stopped), so it counts training, validation
    and checkpoints, not the time between a kill and the resume. A workdir
    trained with fit() (`draw_tf.keras_engine`, e.g. on JAX) records its
    seconds in keras_checkpoints/state.json instead. Steps whose events
    are not in the workdir are not counted: see `untimed_step_ranges`.
    """
    return _training_time(workdir, final_step=0, log_every_steps=1)[0]


def _wall_seconds(events: list[tuple[float, int]]) -> float:
    times = [wall_time for wall_time, _ in events]
    return float(
        sum(
            later - earlier
            for earlier, later in zip(times, times[1:], strict=False)
            if later - earlier <= _MAX_SUMMARY_GAP_SECONDS
        )
    )


def untimed_step_ranges(
    workdir: str, final_step: int, log_every_steps: int
) -> list[list[int]]:
    """Training steps that `training_wall_seconds` could not time.

    A run resumed in a copy of its workdir that lacks some TensorBoard
    event files (e.g. restored from a committed checkpoint on a fresh
    machine) has no wall times for the steps those files logged. Those
    show as gaps of more than 10 logging intervals between the summaries'
    steps (or before the first one, or after the last up to `final_step`).

    Returns:
      [[first, last], ...]: the untimed step ranges, in order; [] when the
      events cover the run (or it was trained with fit(), which keeps its
      own seconds).
    """
    return _training_time(workdir, final_step, log_every_steps)[1]


def _training_time(
    workdir: str, final_step: int, log_every_steps: int
) -> tuple[float, list[list[int]]]:
    """(training_wall_seconds, untimed_step_ranges), the events read once."""
    state = _keras_training_state(workdir)
    if state is not None:
        return float(state.get("train_seconds", 0.0)), []
    events = _summary_events(workdir)
    return _wall_seconds(events), _untimed_steps(
        events, final_step, log_every_steps
    )


def _untimed_steps(
    events: list[tuple[float, int]], final_step: int, log_every_steps: int
) -> list[list[int]]:
    steps = sorted({step for _, step in events})
    largest_gap = 10 * max(1, log_every_steps)
    bounds = [0, *steps, final_step]
    return [
        [earlier, later]
        for earlier, later in zip(bounds, bounds[1:], strict=False)
        if later - earlier > largest_gap
    ]


def sample_subset(model, config: config_lib.TrainConfig) -> dict | None:
    """A model's results on the shipped MNIST sample's test images.

    What the shipped models' tests check offline (`draw_tf.mnist_sample`:
    the first 500 test digits; composites built from them for
    two_digit_mnist and cluttered_mnist). None for other datasets.

    Args:
      model: the model, with its weights.
      config: its config (dataset, seed, evaluation batch).
    """
    if config.dataset not in data_lib.MNIST_BASED_DATASETS:
        return None
    images, labels, *places = mnist_sample.test_images(config)
    results = _evaluate(model, config, images, labels, places=places)
    noise = {} if config.task == "classify" else {"noise": bounds.NOISE}
    return dict(
        results,
        evaluator_seed=config.seed + 1,
        source="draw_tf.mnist_sample",
        **noise,
    )


def ship(
    workdir: str,
    name: str,
    *,
    data_dir: str = "",
    checkpoint: str = "",
    importance_samples: int = 100,
    subset_size: int = 200,
    train_command: str = "",
    description: str = "",
    output_dir: str = pretrained.DIRECTORY,
    float16: bool = False,
) -> dict:
    """Evaluates a workdir's best checkpoint and ships it as `name`.

    Args:
      workdir: a training workdir.
      name: the shipped model's name (a directory name).
      data_dir: the MNIST idx directory, if not the workdir config's.
      checkpoint: a checkpoint prefix instead of the best (or latest).
      importance_samples: k of the importance-weighted test bound (DRAW).
      subset_size: the first this many test images make the fixed subset.
      train_command: the command that trained it, for the record.
      description: one line on what the model is.
      output_dir: where the model directories are.
      float16: store the weights in float16 (half the bytes). They are
        rounded first and every number of the record is measured with the
        rounded weights; refused if that moves the test bound (negative
        ELBO, or the error rate of a classifier) by more than
        `FLOAT16_TOLERANCE` from the float32 weights'.

    Returns:
      The record written.

    Raises:
      ShipError: on a bad name, workdir or checkpoint, or float16 weights
        that do not keep the bound.
    """
    if not name or "/" in name or name.startswith("."):
        raise ShipError(f"--name={name!r} must be a plain directory name.")
    if data_dir and not os.path.isdir(data_dir):
        raise ShipError(
            f"--data_dir={data_dir} is not a directory; expected the MNIST "
            "idx files' directory."
        )
    config_lib.make_writable_directory("output_dir", output_dir)
    # The run's own --init_from is recorded from its init_from.json
    # (read_workdir_config leaves it out of an evaluation's config).
    overrides = dict(mode="evaluate", max_eval_examples=0)
    if data_dir:
        overrides["data_dir"] = data_dir
    config = read_workdir_config(workdir, **overrides)
    splits = data_lib.load_splits(config)
    dataclasses.replace(
        config, importance_samples=importance_samples
    ).check_fits_in_memory(splits.image_shape)
    try:
        loaded = loading.load_workdir(
            config,
            splits.image_shape,
            workdir,
            checkpoint=checkpoint,
        )
    except config_lib.ConfigError as error:
        raise ShipError(str(error)) from None
    model, used = loaded.model, loaded.path
    steps = loaded.step
    classify = config.task == "classify"
    instruct = config.task == "instruct"
    if classify or instruct:
        importance_samples = 0  # the bounds of the unconditional model
    selection_key = "error_rate" if classify else "negative_elbo"
    places = [] if splits.test_places is None else [splits.test_places]
    float32_test = None
    if float16:
        float32_test = _evaluate(
            model, config, splits.test, splits.test_labels, places=places
        )
        _round_to_float16(model)
    test = _evaluate(
        model,
        config,
        splits.test,
        splits.test_labels,
        importance_samples,
        places=places,
    )
    if float16:
        _check_float16_kept_the_bound(float32_test, test, classify, name)
    if instruct:
        test.update(_judged(model, config, splits))
    subset = _evaluate(
        model,
        config,
        splits.test[:subset_size],
        None
        if splits.test_labels is None
        else splits.test_labels[:subset_size],
        places=[places[0][:subset_size]] if places else [],
    )
    if not classify:
        test = dict(test, noise=bounds.NOISE)
        subset = dict(subset, noise=bounds.NOISE)
    shipped_config = dict(
        dataclasses.asdict(config),
        workdir="",
        mode="train",
        # Where the data lay is the training machine's, not the model's.
        data_dir="",
    )
    architecture = config.architecture()
    wall_seconds, untimed = _training_time(
        workdir, steps, config.log_every_steps
    )
    record = {
        "name": name,
        "description": description,
        "shipped": datetime.date.today().isoformat(),
        "checkpoint": os.path.basename(used),
        "steps": steps,
        "epochs": round(steps / (len(splits.train) // config.batch_size), 2),
        "training_wall_hours": round(wall_seconds / 3600, 2),
        "untimed_steps": untimed,
        "machines": workdir_layout.read_json_lines(
            workdir, workdir_layout.MACHINES
        ),
        "shipped_on": machine.cpu_description(),
        "architecture": architecture,
        "image_shape": [int(size) for size in splits.image_shape],
        "config": shipped_config,
        "test": test,
        "weights_dtype": "float16" if float16 else "float32",
        "float32_test": float32_test,
        "subset": dict(subset, evaluator_seed=config.seed + 1),
        "sample_subset": sample_subset(model, config),
        "init_from": _shipped_origin(workdir),
        "history": earlier_stages(workdir),
        "paper": PAPER_RESULTS.get(
            (config.task, config.dataset, bool(config.attention)), {}
        ),
        "validation_curve": [
            {key: entry[key] for key in ("step", selection_key) if key in entry}
            for entry in workdir_layout.read_json_lines(
                workdir, workdir_layout.VALIDATION
            )
        ],
        "commands": {
            "train": train_command,
            "evaluate": (
                f"python train.py --pretrained={name} --mode=evaluate "
                + (
                    ""
                    if instruct
                    else f"--importance_samples={importance_samples} "
                )
                + f"--workdir=runs/pretrained_{name}"
            ),
            "draw": (
                f"python train.py --pretrained={name} --mode=draw "
                + (
                    _EXAMPLE_INSTRUCTIONS[bool(config.num_places)]
                    if instruct
                    else ""
                )
                + f"--workdir=runs/pretrained_{name}"
            ),
            "export": (
                f"python export/export_saved_model.py --pretrained={name} "
                "--export_base=exported"
            ),
        },
    }
    final = os.path.join(output_dir, name)
    staging = os.path.join(output_dir, f".tmp-{name}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    weights_path = os.path.join(staging, pretrained.WEIGHTS_FILE)
    model.save_weights(weights_path)
    if float16:
        pretrained.store_float16(weights_path)
    with open(os.path.join(staging, pretrained.RECORD_FILE), "w") as file:
        json.dump(record, file, indent=2, sort_keys=True)
        file.write("\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staging, final)
    return record


_EXAMPLE_INSTRUCTIONS = {
    False: '--instructions="7, 3, 1" ',
    True: '--instructions="7 top-left; 3 bottom-right" ',
}


def _evaluate(
    model, config, images, labels, importance_samples=0, places=()
) -> dict:
    """The run loop's bounds (or classifier numbers) of `model` on images.

    To instruct: images are episode targets, labels their classes, and
    `places` [the places] of a model with places (else empty).
    """
    evaluate = loading.evaluator(model, config)
    if config.task == "instruct":
        return evaluate(images, labels, places[0] if places else None)
    if config.task == "classify":
        return evaluate(images, labels)
    return evaluate(images, importance_samples=importance_samples)


def _judged(model, config, splits) -> dict:
    """The judge's reading of the test instructions drawn, as train.py's.

    The first --max_eval_examples of the test instructions are drawn with
    the evaluator's noise (`draw_tf.bounds.EpisodeEvaluator.draw`) and read
    by --judge (`draw_tf.judge.judge_episodes`).
    """
    judge_model = warm_start.load_judge(config.judge)
    if judge_model is None:
        return {}
    drawn = loading.evaluator(model, config).draw(
        splits.test_labels, splits.test_places
    )
    scores = judge.instruction_scores(
        judge_model, drawn["images"], splits.test_labels, splits.test_places
    )
    return dict(scores, judge=config.judge)


def _shipped_origin(workdir: str) -> dict | None:
    """The run's init_from.json, the source workdir named without its path.

    A record holds no machine's paths: a source workdir is named by its
    directory name (a shipped source by its model name, as it is).
    """
    origin = workdir_layout.read_json(workdir, workdir_layout.INIT_FROM)
    if origin and origin.get("workdir"):
        origin = dict(origin, workdir=os.path.basename(origin["workdir"]))
    return origin


def earlier_stages(workdir: str) -> list[dict]:
    """The runs the workdir's run started from (--init_from), oldest first.

    A warm restart's record would otherwise forget the training before it:
    each earlier stage keeps its steps, epochs, wall hours, CPU kinds,
    validation curve and train command, so that a record holds the whole
    compute spent and the whole curve (`draw_tf.learning_curves`). A
    shipped source gives its record's stages (it is read before a model of
    the same name is shipped over it); a source workdir, where it still
    exists, its own files, the curve up to the step it was taken at. A
    source that is gone leaves the history where it is known.
    """
    origin = workdir_layout.read_json(workdir, workdir_layout.INIT_FROM)
    if not origin:
        return []
    if origin.get("kind") == "pretrained":
        try:
            source = pretrained.record(origin["name"])
        except (OSError, KeyError, ValueError):
            return []
        # Stages shipped before they named their dataset were the source's.
        dataset = source.get("config", {}).get("dataset")
        named = {"dataset": dataset} if dataset else {}
        return [{**named, **stage} for stage in source.get("history", [])] + [
            _stage_of_record(source)
        ]
    source_workdir = origin.get("workdir", "")
    if not source_workdir or not os.path.isdir(source_workdir):
        return []
    return earlier_stages(source_workdir) + [
        _stage_of_workdir(source_workdir, int(origin.get("steps", 0)))
    ]


def _stage_of_record(record: dict) -> dict:
    """One history stage: a shipped model's training, from its record."""
    return {
        "source": f"shipped {record['name']} ({record.get('shipped', '')})",
        "dataset": record.get("config", {}).get("dataset"),
        "steps": record["steps"],
        "epochs": record["epochs"],
        "training_wall_hours": record["training_wall_hours"],
        "untimed_steps": record.get("untimed_steps") or [],
        "vector_extensions": _vector_extensions(record.get("machines", [])),
        "validation_curve": record.get("validation_curve", []),
        "train_command": record.get("commands", {}).get("train", ""),
        "test": record.get("test", {}),
    }


def _stage_of_workdir(workdir: str, steps: int) -> dict:
    """One history stage: a workdir's training up to `steps`."""
    config = read_workdir_config(workdir, mode="evaluate")
    key = "error_rate" if config.task == "classify" else "negative_elbo"
    entries = [
        entry
        for entry in workdir_layout.read_json_lines(
            workdir, workdir_layout.VALIDATION
        )
        if 0 < entry.get("step", 0) <= steps
    ]
    curve = [
        {name: entry[name] for name in ("step", key) if name in entry}
        for entry in entries
    ]
    machines = workdir_layout.read_json_lines(workdir, workdir_layout.MACHINES)
    # Epochs from the run's own epoch count at its last evaluation, or (a
    # run without validation) from the steps per epoch it recorded.
    last = entries[-1] if entries else {}
    per_epoch = machines[-1].get("steps_per_epoch") if machines else None
    if "epoch" in last:
        epochs = round(steps * last["epoch"] / last["step"], 2)
    elif per_epoch:
        epochs = round(steps / per_epoch, 2)
    else:
        epochs = None
    wall_seconds, untimed = _training_time(
        workdir, steps, config.log_every_steps
    )
    return {
        "source": f"workdir {os.path.basename(os.path.normpath(workdir))}",
        "dataset": config.dataset,
        "steps": steps,
        "epochs": epochs,
        "training_wall_hours": round(wall_seconds / 3600, 2),
        "untimed_steps": untimed,
        "vector_extensions": _vector_extensions(machines),
        "validation_curve": curve,
        "train_command": "",
        "test": workdir_layout.read_json(workdir, workdir_layout.TEST) or {},
    }


def _vector_extensions(machines: list[dict]) -> list[str]:
    """The CPU kinds a run trained on, in the order first seen."""
    kinds = []
    for entry in machines:
        kind = entry.get("vector_extensions")
        if kind and kind not in kinds:
            kinds.append(kind)
    return kinds


# How far float16 weights may move the test bound (nats; for a classifier,
# the error rate) from the float32 ones before a float16 ship is refused.
FLOAT16_TOLERANCE = 0.01


def _round_to_float16(model) -> None:
    """Rounds the model's weights to float16 values (kept in float32)."""
    model.set_weights(
        [
            np.asarray(value).astype(np.float16).astype(np.float32)
            for value in model.get_weights()
        ]
    )


def _check_float16_kept_the_bound(before, after, classify, name) -> None:
    """Raises ShipError if float16 moved the test bound past the tolerance."""
    key = "error_rate" if classify else "negative_elbo"
    if abs(after[key] - before[key]) > FLOAT16_TOLERANCE:
        raise ShipError(
            f"--float16: {name}'s test {key} moves from {before[key]:.4f} "
            f"to {after[key]:.4f} with float16 weights (more than "
            f"{FLOAT16_TOLERANCE}); ship it in float32."
        )


# How far the shipped weights' bound on the record's test subset may be
# from the recorded one before remeasure refuses them (nats or error rate).
_SUBSET_TOLERANCE = 1e-3


def remeasure(
    name: str,
    *,
    data_dir: str = "",
    importance_samples: int = 100,
    output_dir: str = pretrained.DIRECTORY,
) -> dict:
    """Measures a shipped model's test bounds again and updates its record.

    The weights are loaded from the shipped `model.weights.h5` and checked
    against the record: their bound on the fixed test subset must equal the
    recorded one. Then the whole test split is evaluated (for DRAW, with
    `importance_samples` as k of the importance-weighted bound) and the
    record's `test`, its evaluate command and `remeasured` /
    `remeasured_on` are rewritten, the record replaced atomically.

    Args:
      name: the shipped model's name (a directory under `output_dir`).
      data_dir: the MNIST idx directory, if not found without it.
      importance_samples: k of the importance-weighted test bound (DRAW).
      output_dir: where the model directories are.

    Returns:
      The record written.

    Raises:
      ShipError: on an unknown name, or weights that do not reproduce the
        recorded subset bound.
    """
    directory = os.path.join(output_dir, name)
    record_path = os.path.join(directory, pretrained.RECORD_FILE)
    weights_path = os.path.join(directory, pretrained.WEIGHTS_FILE)
    if not name or "/" in name or not os.path.isfile(weights_path):
        shipped = (
            sorted(
                entry
                for entry in os.listdir(output_dir)
                if os.path.isfile(
                    os.path.join(output_dir, entry, pretrained.WEIGHTS_FILE)
                )
            )
            if os.path.isdir(output_dir)
            else []
        )
        raise ShipError(
            f"--name={name!r} is not a shipped model in {output_dir}; "
            f"shipped: {', '.join(shipped) or 'none'}."
        )
    with open(record_path) as file:
        record = json.load(file)
    if data_dir and not os.path.isdir(data_dir):
        raise ShipError(
            f"--data_dir={data_dir} is not a directory; expected the MNIST "
            "idx files' directory."
        )
    with tempfile.TemporaryDirectory() as workdir:
        overrides = dict(
            mode="evaluate", max_eval_examples=0, pretrained="", workdir=workdir
        )
        if data_dir:
            overrides["data_dir"] = data_dir
        config = config_lib.TrainConfig.from_dict(
            record["config"], **overrides
        ).validate()
        splits = data_lib.load_splits(config)
        classify = config.task == "classify"
        if not classify:
            dataclasses.replace(
                config, importance_samples=importance_samples
            ).check_fits_in_memory(splits.image_shape)
        model = loading.build_model(config, splits.image_shape)
        model.load_weights(weights_path)
        recorded = record["subset"]
        size = recorded["num_examples"]
        subset = _evaluate(
            model,
            config,
            splits.test[:size],
            None if splits.test_labels is None else splits.test_labels[:size],
        )
        key = "error_rate" if classify else "negative_elbo"
        if abs(subset[key] - recorded[key]) > _SUBSET_TOLERANCE:
            raise ShipError(
                f"{weights_path}: {key} {subset[key]:.4f} on the record's "
                f"{size}-image test subset, recorded {recorded[key]:.4f}; "
                "expected the weights the record was measured with."
            )
        test = _evaluate(
            model,
            config,
            splits.test,
            splits.test_labels,
            0 if classify else importance_samples,
        )
    record["test"] = test if classify else dict(test, noise=bounds.NOISE)
    record["remeasured"] = datetime.date.today().isoformat()
    record["remeasured_on"] = machine.cpu_description()
    if not classify:
        record["commands"]["evaluate"] = (
            f"python train.py --pretrained={name} --mode=evaluate "
            f"--importance_samples={importance_samples} "
            f"--workdir=runs/pretrained_{name}"
        )
    staging = record_path + ".tmp"
    with open(staging, "w") as file:
        json.dump(record, file, indent=2, sort_keys=True)
        file.write("\n")
    os.replace(staging, record_path)
    return record
