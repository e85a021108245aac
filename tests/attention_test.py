"""Tests of draw_tf.attention against NumPy transcriptions of eqs. 17-29."""

import numpy as np
import pytest
from keras import ops

from draw_tf import attention
from tests import numpy_reference as ref
from tests.backends import gradient, numpy, tensor

# (height B, width A, N): square and non-square images, N = 1, 2, 5.
SHAPES = [(5, 5, 1), (6, 9, 2), (9, 6, 5), (12, 7, 3), (28, 28, 5)]


def _random_windows(rng, batch, height, width):
    """Windows with centres on and off the image and varied scales."""
    return np.stack(
        [
            rng.uniform(-2, width + 3, batch),  # g_X
            rng.uniform(-2, height + 3, batch),  # g_Y
            rng.uniform(0.2, 4.0, batch),  # sigma^2
            rng.uniform(0.3, 3.0, batch),  # delta
            rng.uniform(0.5, 2.0, batch),  # gamma
        ],
        axis=-1,
    )


@pytest.mark.parametrize("height,width,N", SHAPES)
def test_filterbanks_match_numpy_transcription(height, width, N):
    rng = np.random.default_rng(0)
    windows = _random_windows(rng, 4, height, width)
    filterbank_x, filterbank_y = attention.filterbanks(
        tensor(windows), N, height, width
    )
    assert filterbank_x.shape == (4, N, width)
    assert filterbank_y.shape == (4, N, height)
    for k, (g_x, g_y, sigma2, delta, _) in enumerate(windows):
        np.testing.assert_allclose(
            filterbank_x[k],
            ref.filterbank(g_x, delta, sigma2, N, width),
            rtol=1e-4,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            filterbank_y[k],
            ref.filterbank(g_y, delta, sigma2, N, height),
            rtol=1e-4,
            atol=1e-6,
        )


@pytest.mark.parametrize("N", [1, 2, 3, 4, 5])
def test_grid_is_centred_on_g(N):
    # With a tiny variance each filter row peaks at its centre mu^i. On a
    # 21-pixel axis with g = 11 and stride 2 the centres are symmetric
    # about g: 11 + 2 * (i - N/2 - 0.5).
    size, center, stride = 21, 11.0, 2.0
    bank = numpy(
        attention.axis_filterbank(
            tensor([center]), tensor([stride]), tensor([1e-3]), N, size
        )
    )[0]
    peaks = np.argmax(bank, axis=-1) + 1  # back to 1-based pixels
    expected = center + stride * (np.arange(1, N + 1) - N / 2 - 0.5)
    np.testing.assert_array_equal(peaks, expected)
    assert np.mean(expected) == center
    # The weighted mean position of the whole grid is g.
    mean_position = np.sum(bank * np.arange(1, size + 1)) / N
    np.testing.assert_allclose(mean_position, center, rtol=1e-5)


@pytest.mark.parametrize("height,width,N", SHAPES)
def test_rows_sum_to_one(height, width, N):
    windows = _random_windows(np.random.default_rng(1), 8, height, width)
    for bank in attention.filterbanks(tensor(windows), N, height, width):
        np.testing.assert_allclose(numpy(ops.sum(bank, -1)), 1.0, rtol=1e-5)


def test_extreme_parameters_stay_finite_and_normalised():
    centers = [-1e20, -1e6, 0.5, 3.0, 1e6, 1e20, 14.0, 14.0, 14.0]
    variances = [1.0, 1.0, 0.0, 1e-30, 1.0, 1.0, 1e30, np.inf, 1e-45]
    strides = [1.0, 1e10, 0.0, 1.0, 1e-10, 1.0, 1.0, 1.0, 1e30]
    banks = attention.axis_filterbank(
        tensor(centers),
        tensor(strides),
        tensor(variances),
        5,
        28,
    )
    assert np.all(np.isfinite(banks))
    np.testing.assert_allclose(numpy(ops.sum(banks, -1)), 1.0, rtol=1e-5)

    # Gradients are finite too.
    def loss(center):
        bank = attention.axis_filterbank(
            center, tensor(strides), tensor(variances), 5, 28
        )
        return ops.sum(bank * tensor(np.arange(28)))

    assert np.all(np.isfinite(gradient(loss, centers)))


def test_filterbank_x_uses_g_x_and_filterbank_y_uses_g_y():
    # A window that is far right but at the top: F_X peaks at high columns,
    # F_Y at low rows (a shared mu would move only along the diagonal).
    window = tensor([[9.0, 2.0, 0.1, 1.0, 1.0]])
    filterbank_x, filterbank_y = attention.filterbanks(window, 1, 10, 10)
    assert np.argmax(filterbank_x[0, 0]) + 1 == 9
    assert np.argmax(filterbank_y[0, 0]) + 1 == 2


@pytest.mark.parametrize("height,width,N", SHAPES)
@pytest.mark.parametrize("channels", [1, 3])
def test_read_and_write_filters_match_eqs_27_and_29(height, width, N, channels):
    rng = np.random.default_rng(2)
    windows = _random_windows(rng, 2, height, width)
    images = rng.uniform(size=(2, height, width, channels))
    patches = rng.normal(size=(2, N, N, channels))
    filterbank_x, filterbank_y = attention.filterbanks(
        tensor(windows), N, height, width
    )
    glimpses = attention.apply_read_filters(
        tensor(images), filterbank_x, filterbank_y
    )
    written = attention.apply_write_filters(
        tensor(patches), filterbank_x, filterbank_y
    )
    for k, (g_x, g_y, sigma2, delta, gamma) in enumerate(windows):
        F_X = ref.filterbank(g_x, delta, sigma2, N, width)
        F_Y = ref.filterbank(g_y, delta, sigma2, N, height)
        np.testing.assert_allclose(
            gamma * glimpses[k],
            ref.read_glimpse(images[k], F_X, F_Y, gamma),
            rtol=1e-4,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            written[k] / gamma,
            ref.write_patch(patches[k], F_X, F_Y, gamma),
            rtol=1e-4,
            atol=1e-5,
        )


@pytest.mark.parametrize("height,width,N", SHAPES)
def test_write_is_adjoint_of_read(height, width, N):
    # With gamma = 1: <read(x), w> = <x, write(w)>.
    rng = np.random.default_rng(3)
    windows = _random_windows(rng, 3, height, width)
    windows[:, 4] = 1.0
    images = tensor(rng.normal(size=(3, height, width, 2)))
    patches = tensor(rng.normal(size=(3, N, N, 2)))
    filterbank_x, filterbank_y = attention.filterbanks(
        tensor(windows), N, height, width
    )
    read = attention.apply_read_filters(images, filterbank_x, filterbank_y)
    written = attention.apply_write_filters(patches, filterbank_x, filterbank_y)
    lhs = numpy(ops.sum(read * patches, axis=(1, 2, 3)))
    rhs = numpy(ops.sum(images * written, axis=(1, 2, 3)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("height,width,N", SHAPES)
def test_window_head_matches_eqs_22_to_24(height, width, N):
    head = attention.AttentionWindowHead(N, (height, width, 1))
    hidden = np.random.default_rng(12).normal(size=(4, 7))
    window = numpy(head(tensor(hidden)))
    kernel, bias = (numpy(v) for v in head.linear.weights)
    raw = hidden @ kernel + bias
    for k in range(4):
        np.testing.assert_allclose(
            window[k],
            ref.window_from_linear(raw[k], N, width, height),
            rtol=1e-5,
            atol=1e-5,
        )


@pytest.mark.parametrize("N", [1, 5])
def test_a_framed_window_is_eqs_22_to_24_on_the_frame(N):
    # g = corner + (S + 1) / 2 * (g~ + 1), delta = (S - 1) / (N - 1) * delta~.
    frame = 30
    head = attention.AttentionWindowHead(N, (60, 60, 1), frame_size=frame)
    hidden = np.random.default_rng(13).normal(size=(4, 7))
    corners = np.array([[0, 0], [30, 0], [0, 30], [30, 30]], "float32")
    window = numpy(head(tensor(hidden), tensor(corners)))
    kernel, bias = (numpy(v) for v in head.linear.weights)
    raw = hidden @ kernel + bias
    for k in range(4):
        expected = np.array(ref.window_from_linear(raw[k], N, frame, frame))
        expected[:2] += corners[k]
        np.testing.assert_allclose(window[k], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("N", [1, 3])
def test_framed_filters_are_the_frames_own_zero_outside(N):
    # Within its frame a window is the paper's on an image of the frame's
    # size: the filters over the frame's pixels, nothing elsewhere.
    rng = np.random.default_rng(15)
    size, frame = 20, 8
    starts = np.array([0.0, 5.0, 12.0])
    centers = starts + rng.uniform(-3, frame + 3, size=3)
    stride = rng.uniform(0.5, 3, size=3)
    variance = rng.uniform(0.3, 4, size=3)
    framed = numpy(
        attention.axis_filterbank(
            tensor(centers),
            tensor(stride),
            tensor(variance),
            N,
            size,
            tensor(starts),
            frame,
        )
    )
    own = numpy(
        attention.axis_filterbank(
            tensor(centers - starts), tensor(stride), tensor(variance), N, frame
        )
    )
    for k, start in enumerate(starts.astype(int)):
        np.testing.assert_allclose(
            framed[k, :, start : start + frame], own[k], rtol=1e-5, atol=1e-7
        )
        outside = np.delete(framed[k], np.s_[start : start + frame], axis=1)
        assert np.all(outside == 0.0)


def test_a_framed_write_stays_in_its_frame_and_a_read_sees_it_alone():
    write = attention.AttentiveWrite(3, (12, 12, 1), frame_size=6)
    read = attention.AttentiveRead(3, (12, 12, 1), frame_size=6)
    hidden = tensor(np.random.default_rng(16).normal(size=(2, 5)))
    write.build((None, 5))
    read.build(decoder_hidden_shape=(None, 5))
    _set_random_weights(write, 17)
    corners = tensor(np.array([[6, 0], [0, 6]], "float32"))  # x, y
    update, _ = write(hidden, corners)
    update = numpy(update)[..., 0]
    assert np.abs(update[0, :6, 6:]).min() > 0  # quadrant 1, top right
    update[0, :6, 6:] = 0.0
    update[1, 6:, :6] = 0.0  # quadrant 2, bottom left
    assert np.all(update == 0.0)
    images = np.random.default_rng(18).uniform(size=(2, 12, 12, 1))
    glimpses, _ = read(tensor(images), tensor(images), hidden, corners)
    images[0, :6, :6] = images[1, :6, 6:] = 7.0  # outside the frames
    moved, _ = read(tensor(images), tensor(images), hidden, corners)
    np.testing.assert_allclose(numpy(moved), numpy(glimpses), rtol=1e-6)


def test_a_frame_that_is_the_image_is_the_papers_window():
    head = attention.AttentionWindowHead(3, (12, 12, 1))
    framed = attention.AttentionWindowHead(3, (12, 12, 1), frame_size=12)
    hidden = tensor(np.random.default_rng(14).normal(size=(2, 6)))
    head.build((None, 6))
    framed.build((None, 6))
    framed.set_weights(head.get_weights())
    np.testing.assert_allclose(
        numpy(framed(hidden, tensor(np.zeros((2, 2), "float32")))),
        numpy(head(hidden)),
        rtol=1e-6,
    )


def test_frame_corners_come_exactly_with_a_frame_size():
    hidden = tensor(np.zeros((1, 4), "float32"))
    corners = tensor(np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="exactly when"):
        attention.AttentionWindowHead(2, (8, 8, 1), frame_size=4)(hidden)
    with pytest.raises(ValueError, match="exactly when"):
        attention.AttentionWindowHead(2, (8, 8, 1))(hidden, corners)


def _set_random_weights(layer, seed):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(0.3 * rng.normal(size=variable.shape))


@pytest.mark.parametrize("channels", [1, 3])
def test_attentive_read_layer(channels):
    height, width, N = 7, 9, 3
    read = attention.AttentiveRead(N, (height, width, channels))
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(2, height, width, channels)).astype(np.float32)
    errors = rng.normal(size=(2, height, width, channels)).astype(np.float32)
    hidden = rng.normal(size=(2, 6)).astype(np.float32)
    read(images, errors, hidden)
    _set_random_weights(read, 5)
    glimpses, window = read(images, errors, hidden)
    assert glimpses.shape == (2, 2 * N * N * channels) == (2, read.output_size)
    kernel, bias = (numpy(v) for v in read.window_head.linear.weights)
    for k in range(2):
        g_x, g_y, sigma2, delta, gamma = ref.window_from_linear(
            hidden[k] @ kernel + bias, N, width, height
        )
        np.testing.assert_allclose(
            window[k], [g_x, g_y, sigma2, delta, gamma], rtol=1e-5
        )
        F_X = ref.filterbank(g_x, delta, sigma2, N, width)
        F_Y = ref.filterbank(g_y, delta, sigma2, N, height)
        expected = np.concatenate(
            [
                ref.read_glimpse(images[k], F_X, F_Y, gamma),
                ref.read_glimpse(errors[k], F_X, F_Y, gamma),
            ],
            axis=-1,
        ).reshape(-1)
        np.testing.assert_allclose(glimpses[k], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_attentive_write_layer(channels):
    height, width, N = 8, 6, 4
    write = attention.AttentiveWrite(N, (height, width, channels))
    hidden = np.random.default_rng(6).normal(size=(2, 5)).astype(np.float32)
    write(hidden)
    _set_random_weights(write, 7)
    update, window = write(hidden)
    assert update.shape == (2, height, width, channels)
    head_kernel, head_bias = (
        numpy(v) for v in write.window_head.linear.weights
    )
    patch_kernel, patch_bias = (numpy(v) for v in write.patch_layer.weights)
    for k in range(2):
        g_x, g_y, sigma2, delta, gamma = ref.window_from_linear(
            hidden[k] @ head_kernel + head_bias, N, width, height
        )
        w = (hidden[k] @ patch_kernel + patch_bias).reshape(N, N, channels)
        F_X = ref.filterbank(g_x, delta, sigma2, N, width)
        F_Y = ref.filterbank(g_y, delta, sigma2, N, height)
        np.testing.assert_allclose(
            update[k],
            ref.write_patch(w, F_X, F_Y, gamma),
            rtol=1e-4,
            atol=1e-5,
        )


def test_colour_channels_share_the_filters():
    # The same filters apply to every channel: reading a 3-channel image
    # equals reading each channel on its own with the same window.
    read = attention.AttentiveRead(2, (6, 6, 3))
    rng = np.random.default_rng(8)
    images = rng.uniform(size=(1, 6, 6, 3)).astype(np.float32)
    hidden = rng.normal(size=(1, 4)).astype(np.float32)
    read(images, images, hidden)
    _set_random_weights(read, 9)
    _, window = read(images, images, hidden)
    filterbank_x, filterbank_y = attention.filterbanks(window, 2, 6, 6)
    for c in range(3):
        single = attention.apply_read_filters(
            images[..., c : c + 1], filterbank_x, filterbank_y
        )
        together = attention.apply_read_filters(
            images, filterbank_x, filterbank_y
        )[..., c : c + 1]
        np.testing.assert_allclose(single, together, rtol=1e-6)


def test_no_attention_read_and_write_eqs_17_18():
    read = attention.FullImageRead((4, 3, 2))
    rng = np.random.default_rng(5)
    images = rng.uniform(size=(2, 4, 3, 2)).astype(np.float32)
    errors = rng.uniform(size=(2, 4, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(
        numpy(read(tensor(images), tensor(errors))),
        np.concatenate(
            [np.reshape(images, [2, -1]), np.reshape(errors, [2, -1])], -1
        ),
    )
    write = attention.DenseWrite((4, 3, 2))
    hidden = rng.uniform(size=(2, 5)).astype(np.float32)
    update = numpy(write(tensor(hidden)))
    kernel, bias = (numpy(v) for v in write.linear.weights)
    np.testing.assert_allclose(
        update,
        (hidden @ kernel + bias).reshape(2, 4, 3, 2),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "make_layer,message",
    [
        (lambda: attention.AttentiveRead(0, (8, 8, 1)), "glimpse_size"),
        (lambda: attention.AttentiveRead(9, (8, 8, 1)), "between 1 and"),
        (lambda: attention.AttentiveWrite(2.5, (8, 8, 1)), "patch_size"),
        (lambda: attention.DenseWrite((8, 8)), "image_shape"),
        (
            lambda: attention.AttentiveWrite(2, (8, 8, 1), frame_size=9),
            "frame_size must be None or an integer between 1 and",
        ),
        (
            lambda: attention.AttentiveRead(2, (8, 8, 1), frame_size=True),
            "frame_size",
        ),
        (lambda: attention.FullImageRead((8, -1, 1)), "image_shape"),
    ],
)
def test_bad_arguments_raise_value_error(make_layer, message):
    with pytest.raises(ValueError, match=message):
        make_layer()


@pytest.mark.parametrize(
    "layer",
    [
        attention.AttentiveRead(2, (8, 6, 1), name="r"),
        attention.AttentiveWrite(5, (8, 6, 3), name="w"),
        attention.AttentionWindowHead(3, (8, 6, 1)),
        attention.AttentiveWrite(2, (8, 8, 1), frame_size=4, name="f"),
        attention.FullImageRead((8, 6, 1)),
        attention.DenseWrite((8, 6, 1)),
    ],
)
def test_get_config_round_trips(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
