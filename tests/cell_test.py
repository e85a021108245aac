"""Tests of draw_tf.cell: one step against a NumPy transcription of eqs. 3-8."""

import numpy as np
import pytest

from draw_tf import cell as cell_lib
from tests import numpy_reference as ref
from tests.backends import numpy, tensor


def _randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(0.3 * rng.normal(size=variable.shape))


def _weights(layer):
    return [numpy(v).astype(np.float64) for v in layer.weights]


def _reference_steps(cell, images, noise):
    """Eqs. 3-8 for each image, loop by loop; returns per-step values."""
    height, width, channels = cell.image_shape
    batch, steps, _ = noise.shape
    enc_kernel, enc_recurrent, enc_bias = _weights(cell.encoder)
    dec_kernel, dec_recurrent, dec_bias = _weights(cell.decoder)
    post_kernel, post_bias = _weights(cell.posterior)
    results = []
    for k in range(batch):
        x = images[k].astype(np.float64)
        canvas = np.zeros_like(x)  # c_0 = 0
        h_enc = c_enc = np.zeros(cell.encoder_units)
        h_dec = c_dec = np.zeros(cell.decoder_units)
        per_step = []
        for t in range(steps):
            x_hat = x - ref.sigmoid(canvas)  # eq. 3
            if cell.read_attention:  # eq. 4, eq. 27
                N = cell.read_glimpse_size
                head_kernel, head_bias = _weights(
                    cell.read_layer.window_head.linear
                )
                g_x, g_y, sigma2, delta, gamma = ref.window_from_linear(
                    h_dec @ head_kernel + head_bias, N, width, height
                )
                F_X = ref.filterbank(g_x, delta, sigma2, N, width)
                F_Y = ref.filterbank(g_y, delta, sigma2, N, height)
                r = np.concatenate(
                    [
                        ref.read_glimpse(x, F_X, F_Y, gamma),
                        ref.read_glimpse(x_hat, F_X, F_Y, gamma),
                    ],
                    axis=-1,
                ).reshape(-1)
            else:  # eq. 17
                r = np.concatenate([x.reshape(-1), x_hat.reshape(-1)])
            h_enc, c_enc = ref.lstm(  # eq. 5
                np.concatenate([r, h_dec]),
                h_enc,
                c_enc,
                enc_kernel,
                enc_recurrent,
                enc_bias,
            )
            posterior = h_enc @ post_kernel + post_bias
            mu, log_sigma = np.split(posterior, 2)
            z = mu + np.exp(log_sigma) * noise[k, t]  # eq. 6
            h_dec, c_dec = ref.lstm(  # eq. 7
                z, h_dec, c_dec, dec_kernel, dec_recurrent, dec_bias
            )
            if cell.write_attention:  # eqs. 28-29
                N = cell.write_patch_size
                head_kernel, head_bias = _weights(
                    cell.write_layer.window_head.linear
                )
                patch_kernel, patch_bias = _weights(
                    cell.write_layer.patch_layer
                )
                g_x, g_y, sigma2, delta, gamma = ref.window_from_linear(
                    h_dec @ head_kernel + head_bias, N, width, height
                )
                w = (h_dec @ patch_kernel + patch_bias).reshape(N, N, channels)
                F_X = ref.filterbank(g_x, delta, sigma2, N, width)
                F_Y = ref.filterbank(g_y, delta, sigma2, N, height)
                update = ref.write_patch(w, F_X, F_Y, gamma)
            else:  # eq. 18
                write_kernel, write_bias = _weights(cell.write_layer.linear)
                update = (h_dec @ write_kernel + write_bias).reshape(x.shape)
            canvas = canvas + update  # eq. 8
            per_step.append(
                {"canvas": canvas, "mu": mu, "log_sigma": log_sigma, "z": z}
            )
        results.append(per_step)
    return results


@pytest.mark.parametrize(
    "image_shape,read_size,write_size",
    [
        ((7, 6, 1), 2, 3),  # attention, non-square
        ((5, 5, 3), 3, 2),  # attention, colour
        ((4, 5, 1), None, None),  # no attention
        ((5, 4, 2), 2, None),  # read attention only
    ],
)
def test_steps_match_numpy_transcription(image_shape, read_size, write_size):
    cell = cell_lib.DrawCell(
        image_shape,
        encoder_units=6,
        decoder_units=5,
        latent_size=3,
        read_glimpse_size=read_size,
        write_patch_size=write_size,
    )
    cell.build()
    _randomise(cell, 0)
    rng = np.random.default_rng(1)
    images = (rng.uniform(size=(2, *image_shape)) > 0.5).astype(np.float32)
    noise = rng.normal(size=(2, 3, 3)).astype(np.float32)
    expected = _reference_steps(cell, images, noise)
    state = cell.get_initial_state(2)
    for t in range(3):
        outputs, state = cell((images, noise[:, t]), state)
        for k in range(2):
            np.testing.assert_allclose(
                outputs["canvas"][k],
                expected[k][t]["canvas"],
                rtol=1e-4,
                atol=1e-4,
            )
            np.testing.assert_allclose(
                outputs["posterior_mean"][k],
                expected[k][t]["mu"],
                rtol=1e-4,
                atol=1e-5,
            )
            np.testing.assert_allclose(
                outputs["posterior_log_stddev"][k],
                expected[k][t]["log_sigma"],
                rtol=1e-4,
                atol=1e-5,
            )
            np.testing.assert_allclose(
                outputs["latent"][k],
                expected[k][t]["z"],
                rtol=1e-4,
                atol=1e-5,
            )
    assert isinstance(state, cell_lib.DrawState)
    np.testing.assert_array_equal(state.canvas, outputs["canvas"])


def test_initial_state_is_zero_and_sized():
    cell = cell_lib.DrawCell((4, 4, 1), 7, 5, 3, 2, 2)
    state = cell.get_initial_state(3)
    assert state.canvas.shape == (3, 4, 4, 1)
    assert state.encoder_hidden.shape == state.encoder_cell.shape == (3, 7)
    assert state.decoder_hidden.shape == state.decoder_cell.shape == (3, 5)
    for value in state:
        assert not np.any(numpy(value))
    assert cell.state_size.encoder_hidden == 7
    assert tuple(cell.state_size.canvas) == (4, 4, 1)


def test_read_and_write_heads_are_separate_with_their_own_sizes():
    cell = cell_lib.DrawCell(
        (8, 8, 1), 6, 6, 3, read_glimpse_size=2, write_patch_size=5
    )
    cell.build()
    read_head = cell.read_layer.window_head.linear
    write_head = cell.write_layer.window_head.linear
    assert read_head is not write_head
    read_ids = {id(v) for v in read_head.weights}
    assert not read_ids & {id(v) for v in write_head.weights}
    assert cell.read_layer.output_size == 2 * 2 * 2
    assert cell.write_layer.patch_layer.units == 5 * 5
    # Changing one head moves its own window only.
    images = tensor(np.ones([1, 8, 8, 1]))
    hidden = tensor(np.ones([1, 6]))

    def windows():
        _, read_window = cell.read_layer(images, images, hidden)
        _, write_window = cell.write_layer(hidden)
        return numpy(read_window), numpy(write_window)

    read_before, write_before = windows()
    read_head.bias.assign(read_head.bias + 0.5)
    read_after, write_after = windows()
    assert not np.allclose(read_before, read_after)
    np.testing.assert_array_equal(write_before, write_after)
    write_head.bias.assign(write_head.bias - 0.5)
    read_last, write_last = windows()
    np.testing.assert_array_equal(read_after, read_last)
    assert not np.allclose(write_after, write_last)


def test_generate_step_runs_the_decoder_alone():
    cell = cell_lib.DrawCell((6, 6, 1), 4, 5, 3, 2, 3)
    cell.build()
    _randomise(cell, 2)
    state = cell.get_initial_state(2)
    latent = tensor(np.random.default_rng(3).normal(size=(2, 3)))
    outputs, next_state = cell.generate_step(latent, state)
    h, (_, c) = cell.decoder(latent, [state.decoder_hidden, state.decoder_cell])
    update, window = cell.write_layer(h)
    np.testing.assert_allclose(outputs["canvas"], update, rtol=1e-6)
    np.testing.assert_allclose(outputs["write_window"], window, rtol=1e-6)
    np.testing.assert_allclose(next_state.decoder_cell, c, rtol=1e-6)
    np.testing.assert_array_equal(next_state.encoder_hidden, 0.0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(encoder_units=0), "encoder_units"),
        (dict(decoder_units=-3), "decoder_units"),
        (dict(latent_size=1.5), "latent_size"),
        (dict(read_glimpse_size=40), "glimpse_size"),
        (dict(write_patch_size=0), "patch_size"),
        (dict(frame_size=29), "frame_size must be None or an integer"),
        (dict(frame_size=14, write_patch_size=None), "needs both attentions"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cell_lib.DrawCell((28, 28, 1), **kwargs)


def test_get_config_round_trips():
    cell = cell_lib.DrawCell((9, 7, 3), 11, 13, 5, None, 4, name="c")
    config = cell.get_config()
    assert cell_lib.DrawCell.from_config(config).get_config() == config
