"""Tests of draw_tf.model: the unrolled model, generation and training."""

import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf import losses
from tests.portable_model_test import block_images

SMALL = dict(
    num_steps=4,
    encoder_units=16,
    decoder_units=16,
    latent_size=5,
)


def _model(image_shape=(8, 7, 1), read=2, write=3, **kwargs):
    config = dict(SMALL, **kwargs)
    return draw_tf.DrawModel(
        image_shape,
        read_glimpse_size=read,
        write_patch_size=write,
        seed=0,
        **config,
    )


def _binary_images(batch, shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(batch, *shape)) > 0.5).astype(np.float32)


@pytest.mark.parametrize(
    "image_shape,read,write",
    [((8, 7, 1), 2, 3), ((8, 7, 1), None, None), ((6, 6, 3), 3, 3)],
)
def test_outputs_have_documented_shapes(image_shape, read, write):
    model = _model(image_shape, read, write)
    outputs = model(_binary_images(3, image_shape), return_canvases=True)
    T, z = SMALL["num_steps"], SMALL["latent_size"]
    assert outputs["canvas_logits"].shape == (3, *image_shape)
    for key in ("latents", "posterior_mean", "posterior_log_stddev"):
        assert outputs[key].shape == (3, T, z)
    assert outputs["canvases"].shape == (3, T, *image_shape)
    assert ("read_windows" in outputs) == (read is not None)
    assert ("write_windows" in outputs) == (write is not None)
    if read:
        assert outputs["read_windows"].shape == (3, T, 5)
    # The last canvas is sigmoid(c_T).
    np.testing.assert_allclose(
        outputs["canvases"][:, -1],
        tf.sigmoid(outputs["canvas_logits"]),
        rtol=1e-6,
    )


def test_same_noise_same_output_and_seeds_are_deterministic():
    model = _model()
    images = _binary_images(2, (8, 7, 1))
    noise = tf.random.stateless_normal(model.noise_shape(2), seed=[3, 4])
    first = model(images, noise=noise)
    second = model(images, noise=noise)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    by_seed = model(images, seed=[5, 6])
    again = model(images, seed=[5, 6])
    other = model(images, seed=[5, 7])
    np.testing.assert_array_equal(by_seed["latents"], again["latents"])
    assert not np.allclose(by_seed["latents"], other["latents"])
    # Without noise or seed the model's generator moves on each call.
    default_a = model(images)["latents"]
    default_b = model(images)["latents"]
    assert not np.allclose(default_a, default_b)


def test_every_step_draws_fresh_noise():
    model = _model(latent_size=6)
    outputs = model(_binary_images(8, (8, 7, 1)), seed=[1, 1])
    # Recover eps_t = (z_t - mu_t) / sigma_t from the outputs.
    eps = (outputs["latents"] - outputs["posterior_mean"]) / tf.exp(
        outputs["posterior_log_stddev"]
    )
    eps = eps.numpy()
    for s in range(model.num_steps):
        for t in range(s + 1, model.num_steps):
            assert not np.allclose(eps[:, s], eps[:, t])
    noise = model.sample_noise(2000, seed=[2, 3]).numpy()
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1.0) < 0.02
    correlation = np.corrcoef(noise[:, 0].ravel(), noise[:, 1].ravel())
    assert abs(correlation[0, 1]) < 0.05


def test_replicas_draw_different_noise_from_one_seed():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, "conftest.py sets up two logical CPUs"
    strategy = tf.distribute.MirroredStrategy(devices[:2])
    model = _model()
    per_replica = strategy.run(
        lambda: model.sample_noise(3, seed=tf.constant([7, 8]))
    )
    first, second = strategy.experimental_local_results(per_replica)
    assert first.shape == second.shape == (3, 4, 5)
    assert not np.allclose(first, second)
    # Outside any strategy the seed alone decides.
    np.testing.assert_array_equal(
        model.sample_noise(3, seed=[7, 8]), model.sample_noise(3, seed=[7, 8])
    )


def test_eager_equals_tf_function():
    model = _model()
    images = _binary_images(2, (8, 7, 1))
    eager = model(images, seed=[1, 2], return_canvases=True)
    graph = tf.function(
        lambda x: model(x, seed=tf.constant([1, 2]), return_canvases=True)
    )(images)
    for key in eager:
        np.testing.assert_allclose(eager[key], graph[key], rtol=1e-5, atol=1e-6)
    generated = model.generate(3, seed=[4, 4])
    generated_graph = tf.function(
        lambda: model.generate(3, seed=tf.constant([4, 4]))
    )()
    np.testing.assert_allclose(
        generated["images"], generated_graph["images"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("read,write", [(2, 3), (None, None), (2, None)])
def test_gradients_reach_every_variable_and_are_finite(read, write):
    model = _model(read=read, write=write)
    images = _binary_images(4, (8, 7, 1))
    with tf.GradientTape() as tape:
        loss = losses.mean_negative_elbo(images, model(images, seed=[0, 1]))
    gradients = tape.gradient(loss["negative_elbo"], model.trainable_variables)
    assert model.trainable_variables
    for variable, gradient in zip(
        model.trainable_variables, gradients, strict=True
    ):
        assert gradient is not None, variable.path
        assert np.all(np.isfinite(gradient)), variable.path
        assert np.any(gradient != 0), variable.path


def test_generation_is_the_decoder_of_the_forward_pass():
    # The canvas depends on the encoder only through z: feeding the
    # posterior samples z_t to generate() redraws the same canvases.
    model = _model()
    outputs = model(
        _binary_images(3, (8, 7, 1)), seed=[9, 9], return_canvases=True
    )
    generated = model.generate(noise=outputs["latents"])
    np.testing.assert_allclose(
        generated["canvases"], outputs["canvases"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        generated["write_windows"], outputs["write_windows"], rtol=1e-5
    )
    sampled = model.generate(5, seed=[1, 2])
    assert sampled["images"].shape == (5, 8, 7, 1)
    assert sampled["canvases"].shape == (5, 4, 8, 7, 1)
    assert np.all((sampled["images"] >= 0) & (sampled["images"] <= 1))
    np.testing.assert_array_equal(
        sampled["images"], model.generate(5, seed=[1, 2])["images"]
    )


def test_colour_images_run_end_to_end():
    model = _model((6, 5, 3), read=2, write=3)
    images = np.random.default_rng(5).uniform(size=(2, 6, 5, 3))
    optimizer = tf.keras.optimizers.Adam(1e-3)
    with tf.GradientTape() as tape:
        loss = losses.mean_negative_elbo(images, model(images, seed=[1, 1]))
    gradients = tape.gradient(loss["negative_elbo"], model.trainable_variables)
    optimizer.apply_gradients(
        zip(gradients, model.trainable_variables, strict=True)
    )
    assert np.isfinite(loss["negative_elbo"])
    assert model.generate(2, seed=[0, 0])["images"].shape == (2, 6, 5, 3)


@pytest.mark.parametrize(
    "read,write,kind",
    [
        # A 2 x 2 read over 4 steps can see only part of an image of random
        # bits, so the attentive model overfits structured images.
        (2, 3, "blocks"),
        (None, None, "random bits"),
    ],
)
@pytest.mark.slow
def test_overfitting_one_batch_makes_the_loss_fall(read, write, kind):
    tf.keras.utils.set_random_seed(0)
    model = draw_tf.DrawModel(
        (8, 8, 1),
        num_steps=4,
        encoder_units=32,
        decoder_units=32,
        latent_size=8,
        read_glimpse_size=read,
        write_patch_size=write,
        seed=0,
    )
    if kind == "blocks":
        images = tf.constant(block_images(8, seed=1))
    else:
        images = tf.constant(_binary_images(8, (8, 8, 1), seed=1))
    optimizer = tf.keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(step):
        with tf.GradientTape() as tape:
            loss = losses.mean_negative_elbo(
                images, model(images, seed=tf.stack([step, 0]))
            )["negative_elbo"]
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(
            zip(gradients, model.trainable_variables, strict=True)
        )
        return loss

    history = [float(train_step(tf.constant(s))) for s in range(300)]
    first, last = np.mean(history[:10]), np.mean(history[-10:])
    # A blank canvas costs 64 log 2 = 44.4 nats; the fitted batch < 1/3.
    assert first > 8 * 8 * np.log(2) * 0.85
    assert last < first / 3, (first, last)


def test_get_config_round_trips_and_weights_transfer():
    model = _model((6, 6, 3), read=None, write=4, name="draw")
    config = model.get_config()
    clone = draw_tf.DrawModel.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    images = np.random.default_rng(0).uniform(size=(2, 6, 6, 3))
    np.testing.assert_allclose(
        model(images, seed=[1, 2])["canvas_logits"],
        clone(images, seed=[1, 2])["canvas_logits"],
        rtol=1e-6,
    )


def test_checkpoint_restores_into_a_new_model(tmp_path):
    model = _model()
    model.cell.posterior.bias.assign(tf.fill([10], 0.25))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = _model()
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    images = _binary_images(2, (8, 7, 1))
    np.testing.assert_array_equal(
        model(images, seed=[1, 1])["canvas_logits"],
        restored(images, seed=[1, 1])["canvas_logits"],
    )


def test_bad_inputs_raise_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"images must have shape \[batch, 8"):
        model(np.zeros((2, 7, 8, 1), np.float32))
    with pytest.raises(ValueError, match="noise must have shape"):
        model(np.zeros((2, 8, 7, 1), np.float32), noise=tf.zeros([2, 3, 5]))
    with pytest.raises(ValueError, match="batch_size or noise"):
        model.generate()
    with pytest.raises(ValueError, match="num_steps"):
        draw_tf.DrawModel((8, 8, 1), num_steps=0)
    with pytest.raises(ValueError, match="image_shape"):
        draw_tf.DrawModel((8, 8))
