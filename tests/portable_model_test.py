"""DrawModel the Keras way, on whichever backend runs the tests.

`compile()` / `fit()` / `evaluate()` with the negative ELBO as the loss and
L^x, L^z as metrics, Keras callbacks, the `.keras` format, and gradients.
Only NumPy, `keras.ops` and tests/backends.py: the main pytest run runs it
on TensorFlow, tests/jax_backend_test.py on JAX without TensorFlow.
"""

import os

import keras
import numpy as np
import pytest

import draw_tf
from draw_tf import losses
from tests.backends import (
    loss_and_gradients,
    numpy,
    requires_tensorflow,
    tensor,
)

SMALL = dict(
    num_steps=4,
    encoder_units=32,
    decoder_units=32,
    latent_size=8,
    read_glimpse_size=2,
    write_patch_size=3,
)


def block_images(batch, seed):
    """8 x 8 images, each with one 4 x 4 block of ones at a random place."""
    rng = np.random.default_rng(seed)
    images = np.zeros((batch, 8, 8, 1), np.float32)
    for k in range(batch):
        row, column = rng.integers(0, 5, size=2)
        images[k, row : row + 4, column : column + 4] = 1.0
    return images


def _model(**overrides):
    keras.utils.set_random_seed(0)
    return draw_tf.DrawModel((8, 8, 1), **{**SMALL, "seed": 0, **overrides})


@pytest.mark.slow
def test_fit_minimises_the_negative_elbo_and_reports_its_terms():
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = block_images(16, seed=1)
    history = model.fit(
        images, batch_size=8, epochs=60, shuffle=False, verbose=0
    ).history
    assert sorted(history) == ["latent_loss", "loss", "reconstruction_loss"]
    # A blank canvas costs 64 log 2 = 44.4 nats; after 120 steps < 0.6 of it.
    assert history["loss"][0] > 0.8 * 64 * np.log(2)
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    for epoch in range(60):
        np.testing.assert_allclose(
            history["loss"][epoch],
            history["reconstruction_loss"][epoch]
            + history["latent_loss"][epoch],
            rtol=1e-4,
        )
    result = model.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    assert sorted(result) == ["latent_loss", "loss", "reconstruction_loss"]
    np.testing.assert_allclose(
        result["loss"],
        result["reconstruction_loss"] + result["latent_loss"],
        rtol=1e-4,
    )
    assert result["loss"] < 0.6 * history["loss"][0]


def test_compute_loss_is_the_mean_negative_elbo():
    model = _model()
    images = block_images(4, seed=2)
    noise = np.random.default_rng(3).normal(size=model.noise_shape(4))
    outputs = model(images, noise=tensor(noise))
    expected = numpy(
        losses.mean_negative_elbo(images, outputs)["negative_elbo"]
    )
    loss = model.compute_loss(x=tensor(images), y_pred=outputs)
    np.testing.assert_allclose(numpy(loss), expected, rtol=1e-6)
    weights = np.array([1.0, 0.0, 0.0, 3.0], np.float32)
    per_image = numpy(losses.negative_elbo(images, outputs)["negative_elbo"])
    weighted = model.compute_loss(
        x=tensor(images), y_pred=outputs, sample_weight=tensor(weights)
    )
    np.testing.assert_allclose(
        numpy(weighted), per_image @ weights / 4.0, rtol=1e-5
    )


def test_gradients_reach_every_variable_and_are_finite():
    model = _model()
    images = block_images(4, seed=4)
    noise = tensor(np.random.default_rng(5).normal(size=model.noise_shape(4)))
    loss, gradients = loss_and_gradients(
        model,
        lambda outputs: losses.mean_negative_elbo(images, outputs)[
            "negative_elbo"
        ],
        images,
        noise=noise,
    )
    assert np.isfinite(loss)
    assert len(gradients) == len(model.trainable_variables) > 0
    for variable, gradient in zip(
        model.trainable_variables, gradients, strict=True
    ):
        assert gradient is not None, variable.path
        assert np.all(np.isfinite(gradient)), variable.path
        assert np.any(gradient != 0), variable.path


def test_bf16_precision_keeps_the_variables_and_float32_outputs():
    """--precision=bf16: the same fp32 variables, bf16 matmuls, fp32 out."""
    fp32 = _model()
    bf16 = _model(precision="bf16")

    def variables(model):  # paths below the model's (auto) name
        return [
            (v.path.split("/", 1)[1], tuple(v.shape), v.dtype)
            for v in model.weights
        ]

    assert variables(bf16) == variables(fp32)
    assert bf16.cell.encoder.compute_dtype == "bfloat16"
    assert bf16.cell.decoder.compute_dtype == "bfloat16"
    assert bf16.cell.posterior.compute_dtype == "bfloat16"
    bf16.set_weights(fp32.get_weights())
    images = block_images(4, seed=6)
    noise = tensor(np.random.default_rng(7).normal(size=fp32.noise_shape(4)))
    want, got = fp32(images, noise=noise), bf16(images, noise=noise)
    for key, value in want.items():
        assert keras.backend.standardize_dtype(got[key].dtype) == "float32"
        # bfloat16 keeps 8 significant bits: 2^-8 relative per rounding.
        np.testing.assert_allclose(
            numpy(got[key]), numpy(value), atol=0.05, err_msg=key
        )
    elbo = losses.mean_negative_elbo(images, got)["negative_elbo"]
    np.testing.assert_allclose(
        numpy(elbo),
        numpy(losses.mean_negative_elbo(images, want)["negative_elbo"]),
        rtol=0.01,
    )
    # Generation: the fused path and the cell step by step agree, to
    # bfloat16's rounding (XLA, which compiles the scan on JAX, may keep
    # float32 where op by op rounds to bfloat16).
    latents = tensor(np.random.default_rng(8).normal(size=fp32.noise_shape(3)))
    fused = draw_tf.unrolling.generate(bf16.cell, latents)
    plain = draw_tf.unrolling.reference_generate(bf16.cell, latents)
    np.testing.assert_allclose(
        numpy(fused["canvas"]), numpy(plain["canvas"]), atol=2e-3
    )
    restored = draw_tf.DrawModel.from_config(bf16.get_config())
    assert restored.cell.precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        _model(precision="fp16")


@pytest.mark.slow
def test_bf16_fit_trains_the_fp32_weights():
    model = _model(precision="bf16")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = block_images(16, seed=1)
    before = [numpy(v) for v in model.trainable_variables]
    history = model.fit(
        images, batch_size=8, epochs=30, shuffle=False, verbose=0
    ).history
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    for variable, old in zip(model.trainable_variables, before, strict=True):
        assert variable.dtype == "float32", variable.path
        assert np.all(np.isfinite(numpy(variable))), variable.path
        assert np.any(numpy(variable) != old), variable.path


class _StopAfter(keras.callbacks.Callback):
    """Raises at the end of an epoch, as a crash would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


@pytest.mark.slow
def test_backup_and_restore_resumes_and_model_checkpoint_saves(tmp_path):
    images = block_images(16, seed=6)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "epoch{epoch}.weights.h5"), save_weights_only=True
    )
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            images,
            batch_size=8,
            epochs=4,
            verbose=0,
            callbacks=[backup, checkpoint, _StopAfter(1)],
        )
    assert sorted(os.listdir(tmp_path)) == [
        "backup",
        "epoch1.weights.h5",
        "epoch2.weights.h5",
    ]
    # A new process would build a new model: it resumes at epoch 3 with the
    # backed-up weights and optimizer.
    resumed = _model()
    resumed.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = resumed.fit(
        images, batch_size=8, epochs=4, verbose=0, callbacks=[backup]
    )
    assert history.epoch == [2, 3]
    assert int(resumed.optimizer.iterations) == 4 * 2
    # The checkpointed weights load into a fresh model.
    fresh = _model()
    fresh.load_weights(str(tmp_path / "epoch2.weights.h5"))
    noise = tensor(np.random.default_rng(7).normal(size=fresh.noise_shape(2)))
    assert np.all(np.isfinite(numpy(fresh.generate(noise=noise)["images"])))


def test_keras_format_round_trips(tmp_path):
    model = _model(write_patch_size=None)
    path = str(tmp_path / "draw.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, draw_tf.DrawModel)
    assert loaded.get_config() == model.get_config()
    noise = tensor(np.random.default_rng(8).normal(size=model.noise_shape(3)))
    np.testing.assert_allclose(
        numpy(loaded.generate(noise=noise)["images"]),
        numpy(model.generate(noise=noise)["images"]),
        atol=1e-6,
    )


def test_tensorboard_callback_writes_the_loss_and_its_terms(tmp_path):
    pytest.importorskip("tensorflow", reason="TensorBoard needs TensorFlow")
    from tensorboard.backend.event_processing import event_accumulator

    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(
        block_images(16, seed=9),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path))],
    )
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"]) | set(
        accumulator.Tags()["scalars"]
    )
    for name in ("loss", "reconstruction_loss", "latent_loss"):
        assert f"epoch_{name}" in tags, tags


@requires_tensorflow("a SavedModel is traced by the TensorFlow backend")
def test_model_export_writes_a_saved_model_of_call(tmp_path):
    import tensorflow as tf

    model = _model()
    model.export(str(tmp_path / "saved"))  # never called before: no error
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    outputs = loaded.serve(block_images(3, seed=10))
    assert outputs["canvas_logits"].shape == (3, 8, 8, 1)
    assert outputs["latents"].shape == (3, SMALL["num_steps"], 8)
