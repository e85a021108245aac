"""draw_tf.conditional_model: DRAW told what to draw, turn by turn.

Backend-portable: tests/jax_backend_test.py runs this file again on JAX.
"""

import numpy as np
import pytest

from draw_tf import cell as cell_lib
from draw_tf import conditional_model as cm
from draw_tf import losses


def _model(**overrides):
    settings = dict(
        num_turns=3,
        num_places=4,
        steps_per_turn=3,
        encoder_units=8,
        decoder_units=8,
        latent_size=4,
        read_glimpse_size=2,
        write_patch_size=3,
        condition_size=5,
        seed=0,
    )
    return cm.ConditionalDrawModel((12, 12, 1), **{**settings, **overrides})


def _inputs(batch=2, turns=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "targets": (rng.uniform(size=(batch, turns, 12, 12, 1)) > 0.5).astype(
            "float32"
        ),
        "classes": rng.integers(0, 10, size=(batch, turns)),
        "places": np.stack([rng.permutation(4)[:turns] for _ in range(batch)]),
    }


def _noise(model, batch, turns, seed=1):
    shape = model.noise_shape(batch, turns)
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _reference(model, inputs, noise):
    """The plain formulation: the cell called step by step from Python."""
    cell = model.cell
    embedded = np.asarray(model.class_embedding(inputs["classes"])) + (
        np.asarray(model.place_embedding(inputs["places"]))
    )
    batch, turns = inputs["classes"].shape
    state = cell.get_initial_state(batch)
    frames = ()
    if model.place_frames:
        # c_0 is the learned canvas; place p's frame is its quadrant, the
        # (x, y) pixels before it: 0 top-left, 1 top-right, 2 bottom-left.
        side = model.image_shape[0] // 2
        table = np.array([[0, 0], [side, 0], [0, side], [side, side]])
        state = state._replace(
            canvas=np.broadcast_to(
                np.asarray(model.initial_canvas), (batch, *model.image_shape)
            )
        )
    canvases, means = [], []
    for turn in range(turns):
        if turn and not model.carry_states:
            state = cell.get_initial_state(batch)._replace(canvas=state.canvas)
        if model.place_frames:
            frames = (table[inputs["places"][:, turn]].astype("float32"),)
            # The turn's quadrant starts from DRAW's c_0 = 0.
            canvas = np.array(state.canvas)
            for index, (x, y) in enumerate(frames[0].astype(int)):
                canvas[index, y : y + side, x : x + side] = 0.0
            state = state._replace(canvas=canvas)
        turn_means = []
        for t in range(model.steps_per_turn):
            outputs, state = cell(
                (
                    inputs["targets"][:, turn],
                    noise[:, turn, t],
                    embedded[:, turn],
                    *frames,
                ),
                state,
            )
            state = cell_lib.DrawState(*state)
            turn_means.append(np.asarray(outputs["posterior_mean"]))
        canvases.append(np.asarray(state.canvas))
        means.append(np.stack(turn_means, axis=1))
    return np.stack(canvases, axis=1), np.stack(means, axis=1)


@pytest.mark.parametrize("carry_states", [True, False])
def test_the_model_is_the_cell_run_turn_by_turn_on_one_canvas(carry_states):
    model = _model(carry_states=carry_states)
    inputs = _inputs()
    noise = _noise(model, 2, 2)
    outputs = model(inputs, noise=noise, return_canvases=True)
    canvas, mean = _reference(model, inputs, noise)
    np.testing.assert_allclose(
        np.asarray(outputs["canvas_logits"]), canvas, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(outputs["posterior_mean"]), mean, rtol=1e-4, atol=1e-5
    )
    assert outputs["canvases"].shape == (2, 2, 3, 12, 12, 1)
    assert outputs["read_windows"].shape == (2, 2, 3, 5)
    assert outputs["write_windows"].shape == (2, 2, 3, 5)


@pytest.mark.parametrize("carry_states", [True, False])
def test_with_place_frames_each_turn_attends_in_its_quadrant(carry_states):
    model = _model(
        carry_states=carry_states, place_frames=True, read_glimpse_size=3
    )
    model.initial_canvas.assign(
        np.random.default_rng(5).normal(size=(12, 12, 1))
    )
    inputs = _inputs()
    noise = _noise(model, 2, 2)
    outputs = model(inputs, noise=noise)
    canvas, mean = _reference(model, inputs, noise)
    np.testing.assert_allclose(
        np.asarray(outputs["canvas_logits"]), canvas, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(outputs["posterior_mean"]), mean, rtol=1e-4, atol=1e-5
    )
    # A head that outputs g~ = 0 centres every window on its quadrant:
    # corner + (6 + 1) / 2 along each axis of the 6 x 6 frame.
    for layer in (model.cell.read_layer, model.cell.write_layer):
        linear = layer.window_head.linear
        linear.kernel.assign(np.zeros(linear.kernel.shape))
        linear.bias.assign(np.zeros(linear.bias.shape))
    outputs = model(inputs, noise=noise)
    drawn = model.generate(inputs["classes"], inputs["places"], noise=noise)
    side = np.array([[0, 0], [6, 0], [0, 6], [6, 6]])
    centres = side[inputs["places"]][:, :, None, :] + 3.5
    for windows in (
        outputs["read_windows"],
        outputs["write_windows"],
        drawn["write_windows"],
    ):
        np.testing.assert_allclose(
            np.asarray(windows)[..., :2],
            np.broadcast_to(centres, (2, 2, 3, 2)),
            rtol=1e-6,
        )


def test_with_place_frames_a_turn_draws_in_its_quadrant_alone():
    # What a turn draws stays in its quadrant: the rest of the canvas is
    # still the blank c_0 (or what the earlier turns drew there).
    model = _model(place_frames=True)
    model.initial_canvas.assign(np.full((12, 12, 1), -2.0))
    inputs = _inputs(turns=3)
    drawn = model.generate(inputs["classes"], inputs["places"], seed=[3, 4])
    blank = 1 / (1 + np.exp(-np.asarray(model.initial_canvas)[..., 0]))
    images = np.asarray(drawn["images"])[..., 0]
    for episode in range(2):
        previous = blank
        for turn in range(3):
            place = inputs["places"][episode, turn]
            top, left = 6 * (place // 2), 6 * (place % 2)
            changed = np.abs(images[episode, turn] - previous) > 1e-6
            assert changed[top : top + 6, left : left + 6].any()
            changed[top : top + 6, left : left + 6] = False
            assert not changed.any()
            previous = images[episode, turn]


def test_place_frames_start_from_a_blank_learned_canvas():
    model = _model(place_frames=True)
    assert "initial_canvas" in [v.path.split("/")[-1] for v in model.weights]
    np.testing.assert_allclose(
        np.asarray(model.initial_canvas), cm.INITIAL_CANVAS_LOGIT
    )
    assert 1 / (1 + np.exp(-cm.INITIAL_CANVAS_LOGIT)) < 2e-4
    # No frames, no such variable: DRAW's c_0 = 0.
    assert model.initial_canvas is not None
    assert _model().initial_canvas is None
    assert len(_model().weights) == len(model.weights) - 1


def test_the_instruction_changes_what_is_drawn():
    model = _model()
    inputs = _inputs()
    noise = _noise(model, 2, 2)
    first = np.asarray(model(inputs, noise=noise)["canvas_logits"])
    other = dict(inputs, classes=(inputs["classes"] + 1) % 10)
    second = np.asarray(model(other, noise=noise)["canvas_logits"])
    assert np.abs(first - second).max() > 1e-4


def test_episode_terms_are_the_turns_terms_summed():
    model = _model()
    inputs = _inputs(turns=3)
    outputs = model(inputs, noise=_noise(model, 2, 3))
    terms = cm.episode_terms(inputs["targets"], outputs)
    for turn in range(3):
        reconstruction = losses.reconstruction_loss(
            inputs["targets"][:, turn], outputs["canvas_logits"][:, turn]
        )
        latent = np.sum(
            np.asarray(
                losses.latent_loss_per_step(
                    outputs["posterior_mean"][:, turn],
                    outputs["posterior_log_stddev"][:, turn],
                )
            ),
            axis=-1,
        )
        np.testing.assert_allclose(
            np.asarray(terms["reconstruction_loss_per_turn"])[:, turn],
            np.asarray(reconstruction),
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            np.asarray(terms["latent_loss_per_turn"])[:, turn],
            latent,
            rtol=1e-5,
        )
    np.testing.assert_allclose(
        np.asarray(terms["negative_elbo"]),
        np.asarray(terms["reconstruction_loss"])
        + np.asarray(terms["latent_loss"]),
        rtol=1e-5,
    )


def test_generation_draws_every_turn_and_keeps_the_canvas():
    model = _model()
    classes, places = np.array([[7, 3]]), np.array([[0, 3]])
    drawn = model.generate(classes, places, seed=np.array([0, 1]))
    assert drawn["images"].shape == (1, 2, 12, 12, 1)
    assert drawn["canvases"].shape == (1, 2, 3, 12, 12, 1)
    assert drawn["write_windows"].shape == (1, 2, 3, 5)
    images = np.asarray(drawn["images"])
    canvases = np.asarray(drawn["canvases"])
    # The image after a turn is its last step's canvas.
    np.testing.assert_allclose(images[:, 1], canvases[:, 1, -1], atol=1e-6)
    again = model.generate(classes, places, seed=np.array([0, 1]))
    np.testing.assert_allclose(np.asarray(again["images"]), images, atol=1e-6)


def test_class_conditional_model_has_no_places():
    model = _model(num_turns=1, num_places=0)
    assert model.place_embedding is None
    inputs = _inputs(turns=1)
    del inputs["places"]
    outputs = model(inputs)
    assert outputs["canvas_logits"].shape == (2, 1, 12, 12, 1)
    drawn = model.generate(np.array([[7], [3]]), seed=np.array([0, 2]))
    assert drawn["images"].shape == (2, 1, 12, 12, 1)


def test_fit_lowers_the_loss_and_the_config_round_trips():
    import keras

    model = _model(place_frames=True)
    inputs = _inputs(batch=8, turns=2)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(inputs, batch_size=8, epochs=8, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert set(history) >= {"loss", "reconstruction_loss", "latent_loss"}
    clone = cm.ConditionalDrawModel.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    noise = _noise(model, 8, 2)
    np.testing.assert_allclose(
        np.asarray(clone(inputs, noise=noise)["canvas_logits"]),
        np.asarray(model(inputs, noise=noise)["canvas_logits"]),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_turns=0), "num_turns"),
        (dict(num_places=-1), "num_places"),
        (dict(steps_per_turn=0), "steps_per_turn"),
        (dict(condition_size=0), "condition_size"),
        (dict(place_frames=True, num_places=0), "4 quadrants"),
        (dict(place_frames=True, read_glimpse_size=None), "attention"),
    ],
)
def test_bad_arguments_are_one_line(overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        _model(**overrides)
    assert "\n" not in str(error.value)


def test_too_many_turns_or_missing_places_are_refused():
    model = _model(num_turns=2)
    with pytest.raises(ValueError, match="1 to 2 turns"):
        model(_inputs(turns=3))
    inputs = _inputs()
    del inputs["places"]
    with pytest.raises(ValueError, match="pass places"):
        model(inputs)


def test_classes_and_places_out_of_range_are_refused():
    # On JAX an embedding lookup out of range is no error: refused here.
    model = _model()
    inputs = _inputs()
    with pytest.raises(ValueError, match="classes must be in 0-9; got"):
        model.generate(np.full((2, 2), 10), inputs["places"])
    with pytest.raises(ValueError, match="places must be in 0-3; got"):
        model.generate(inputs["classes"], np.array([[0, 4], [1, 2]]))
    with pytest.raises(ValueError, match="classes must be in 0-9"):
        model.condition([[-1, 3]], [[0, 1]])
