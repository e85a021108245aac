"""The fast paths of draw_tf.unrolling against the plain formulation.

Every case builds one model with implementation="fast" and copies its
weights into one with implementation="reference" (the DRAW cell called T
times from Python, step by step generation), then feeds both the same
images and noise.
"""

import keras
import numpy as np
import pytest

import draw_tf
from draw_tf import losses
from tests.backends import (
    compiled,
    loss_and_gradients,
    requires_tensorflow,
    tensor,
)

CASES = [
    # (image_shape, read N, write N, T, steps_per_iteration)
    ((8, 7, 1), 2, 3, 8, 4),  # 2 loop iterations of 4 steps
    ((8, 7, 1), None, None, 6, 4),  # 4 does not divide 6: 3 per iteration
    ((6, 6, 3), 3, 2, 5, 1),  # one step per iteration, colour
    ((7, 7, 1), 1, None, 3, 8),  # more than T: unrolled in Python
    ((9, 9, 1), None, 4, 4, 2),  # square images: one filterbank op set
]


def _pair(image_shape, read, write, num_steps, steps_per_iteration):
    config = dict(
        image_shape=image_shape,
        num_steps=num_steps,
        encoder_units=12,
        decoder_units=10,
        latent_size=4,
        read_glimpse_size=read,
        write_patch_size=write,
        seed=0,
    )
    keras.utils.set_random_seed(1)
    fast = draw_tf.DrawModel(
        implementation="fast",
        steps_per_iteration=steps_per_iteration,
        **config,
    )
    reference = draw_tf.DrawModel(implementation="reference", **config)
    # Random weights everywhere (biases too), so every path matters.
    rng = np.random.default_rng(2)
    for variable in fast.variables:
        if variable.trainable:
            variable.assign(
                rng.normal(scale=0.3, size=variable.shape).astype(np.float32)
            )
    reference.set_weights(fast.get_weights())
    return fast, reference


def _inputs(model, batch=3, seed=3):
    rng = np.random.default_rng(seed)
    images = (rng.uniform(size=(batch, *model.image_shape)) > 0.5).astype(
        np.float32
    )
    noise = rng.normal(size=(batch, model.num_steps, model.latent_size))
    return tensor(images), tensor(noise)


@pytest.mark.parametrize("case", CASES)
def test_forward_pass_matches_the_plain_formulation(case):
    fast, reference = _pair(*case)
    images, noise = _inputs(fast)
    got = compiled(lambda x, e: fast(x, noise=e, return_canvases=True))(
        images, noise
    )
    want = reference(images, noise=noise, return_canvases=True)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(
            got[key], want[key], rtol=1e-5, atol=1e-5, err_msg=key
        )


@pytest.mark.parametrize("case", CASES)
def test_generation_matches_the_plain_formulation(case):
    fast, reference = _pair(*case)
    _, noise = _inputs(fast)
    got = compiled(lambda e: fast.generate(noise=e))(noise)
    want = reference.generate(noise=noise)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(
            got[key], want[key], rtol=1e-5, atol=1e-5, err_msg=key
        )


@pytest.mark.parametrize("case", CASES[:3])
def test_training_step_matches_the_plain_formulation(case):
    """Loss, gradients and the weights after one Adam step agree."""
    fast, reference = _pair(*case)
    images, noise = _inputs(fast)
    results = []
    for model in (fast, reference):
        optimizer = keras.optimizers.Adam(0.01)
        optimizer.build(model.trainable_variables)
        loss, gradients = loss_and_gradients(
            model,
            lambda outputs: losses.mean_negative_elbo(images, outputs)[
                "negative_elbo"
            ],
            images,
            noise=noise,
        )
        optimizer.apply_gradients(
            zip(
                [tensor(g) for g in gradients],
                model.trainable_variables,
                strict=True,
            )
        )
        results.append((loss, gradients, model.get_weights()))
    (
        (fast_loss, fast_grads, fast_weights),
        (ref_loss, ref_grads, ref_weights),
    ) = results
    np.testing.assert_allclose(fast_loss, ref_loss, rtol=1e-6)
    for got, want in zip(fast_grads, ref_grads, strict=True):
        assert got is not None
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for got, want in zip(fast_weights, ref_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@requires_tensorflow("counts the ops of a TensorFlow graph")
@pytest.mark.slow
def test_fast_forward_traces_one_loop_iteration_not_t_steps():
    """The point of the loop: the graph holds a few steps, not T."""
    import tensorflow as tf

    fast, reference = _pair((8, 7, 1), 2, 3, 32, 4)
    images, noise = _inputs(fast)

    def op_count(model):
        function = tf.function(lambda x, e: model(x, noise=e))
        graph = function.get_concrete_function(images, noise).graph
        count = len(graph.get_operations())
        for inner in graph._functions.values():  # the while loop's body
            count += len(inner.graph.get_operations())
        return count

    assert op_count(fast) * 3 < op_count(reference)


def test_implementation_is_validated_and_round_trips():
    model = draw_tf.DrawModel(
        (8, 7, 1), num_steps=3, implementation="reference"
    )
    config = model.get_config()
    assert config["implementation"] == "reference"
    assert draw_tf.DrawModel.from_config(config).implementation == "reference"
    with pytest.raises(ValueError, match="implementation must be one of"):
        draw_tf.DrawModel((8, 7, 1), implementation="xla")
    with pytest.raises(ValueError, match="steps_per_iteration"):
        draw_tf.DrawModel((8, 7, 1), steps_per_iteration=0)
