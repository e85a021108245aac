"""draw_tf.workdir: the layout's names, and which weights a workdir offers."""

import json
import pathlib
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from draw_tf import config as config_lib
from draw_tf import data, workdir
from draw_tf.tensorflow import distributed_engine
from export import export_saved_model_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A tiny workdir that train.py wrote at commit c115337, before the names
# moved here: checkpoints written by older code must keep loading.
OLD_WORKDIR = ROOT / "tests" / "data" / "workdir_c115337"


def test_tensorflow_workdir_offers_its_best_checkpoint(trained_workdir):
    weights = workdir.find_weights(str(trained_workdir))
    assert weights.kind == "tensorflow"
    assert weights.path == str(trained_workdir / "best" / "ckpt-4")
    assert weights.step == 4


def test_fit_workdir_offers_its_best_weights(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "model.weights.h5").write_bytes(b"")
    (tmp_path / "best" / "state.json").write_text('{"step": 7}')
    weights = workdir.find_weights(str(tmp_path))
    assert weights == workdir.Weights(
        "keras", str(tmp_path / "best" / "model.weights.h5"), 7
    )
    assert not workdir.has_tensorflow_checkpoints(str(tmp_path))


def test_empty_workdir_offers_nothing(tmp_path):
    assert workdir.find_weights(str(tmp_path)) is None
    assert workdir.read_json(str(tmp_path), workdir.INIT_FROM) is None
    assert workdir.read_json_lines(str(tmp_path), workdir.VALIDATION) == []


@pytest.mark.slow
def test_an_old_workdir_restores_evaluates_and_exports(tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(OLD_WORKDIR, copy)
    weights = workdir.find_weights(str(copy))
    assert (weights.kind, weights.step) == ("tensorflow", 4)
    saved = json.loads((copy / "config.json").read_text())["config"]
    fields = config_lib.TrainConfig.__dataclass_fields__
    config = config_lib.TrainConfig(
        **{
            **{key: value for key, value in saved.items() if key in fields},
            "workdir": str(copy),
            "mode": "evaluate",
        }
    ).validate()
    splits = data.load_splits(config)
    config_lib.check_workdir_architecture(config, splits.image_shape)
    experiment = distributed_engine.make_trainer(
        config, tf.distribute.get_strategy(), splits
    )
    assert experiment.restore_for_evaluation().endswith("best/ckpt-4")
    assert experiment.step == 4
    results = experiment.evaluate_split(splits.test, None)
    recorded = json.loads((copy / "eval" / "test.json").read_text())
    # test.json was measured by the evaluator of c115337 (TensorFlow's
    # noise, per batch); draw_tf.bounds draws NumPy noise per image, so the
    # same weights give another sample of the same bound: measured here
    # with the weights of best/ckpt-4 (44.370213; the old evaluator's
    # 44.419637 is 0.05 nats away on these 32 images).
    np.testing.assert_allclose(results["negative_elbo"], 44.370213, rtol=1e-5)
    assert abs(results["negative_elbo"] - recorded["negative_elbo"]) < 0.5
    model, path, step = export_saved_model_lib.load_model(str(copy))
    assert path.endswith("best/ckpt-4") and step == 4
    for ours, theirs in zip(
        model.get_weights(), experiment.model.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(np.array(ours), np.array(theirs))


@pytest.mark.parametrize(
    "module",
    sorted(
        str(path.relative_to(ROOT))
        for folder in ("draw_tf", "export", "bench")
        for path in (ROOT / folder).glob("*.py")
        if path.name != "workdir.py"
    ),
)
def test_the_layout_is_spelled_only_in_the_workdir_module(module):
    text = (ROOT / module).read_text()
    names = [
        "machines.jsonl",
        "validation.jsonl",
        "init_from.json",
        "keras_checkpoints",
        "model.weights.h5",
        "test.json",
    ]
    # Not a run's workdir: the peer's own log, a shipped model's directory.
    others = {
        "bench/time_to_quality.py": {"validation.jsonl"},
        "draw_tf/pretrained.py": {"model.weights.h5"},
    }
    for name in set(names) - others.get(module, set()):
        literals = re.findall(rf"[\"']([^\"'\n]*{re.escape(name)})[\"']", text)
        assert not literals, (module, literals)
