"""Reading and writing for DRAW: Gaussian filterbanks (paper Section 3).

Gregor et al., "DRAW: A Recurrent Neural Network For Image Generation",
ICML 2015 (arXiv:1502.04623).

Images are `[batch, height, width, channels]`; in the paper's notation an
image has B rows (height) and A columns (width). Every attention window is
a `[batch, 5]` tensor of, in this order (see `WINDOW_PARAMETER_NAMES`):

    center_x   g_X,      eq. 22, 1-based column coordinate
    center_y   g_Y,      eq. 23, 1-based row coordinate
    variance   sigma^2,  isotropic variance of every filter
    stride     delta,    eq. 24, distance between adjacent filters
    intensity  gamma,    scales the read; the write is divided by it

Without attention (Section 3.1) the read is the whole image and error image
(eq. 17) and the write is a linear map of the decoder state (eq. 18).
With attention (Sections 3.2-3.3) read and write each own a linear head on
the decoder state (eq. 21) and their own grid size N.
"""

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from draw_tf.backend import Tensor

WINDOW_PARAMETER_NAMES = (
    "center_x",
    "center_y",
    "variance",
    "stride",
    "intensity",
)

# Smallest filter variance used: a variance of exactly zero would divide
# zero by zero at a pixel that sits on a filter centre.
_MINIMUM_VARIANCE = 1e-12
# Filter logits are floored here so that a centre far off the image (whose
# squared distance overflows to inf) still gives finite, normalised rows.
_MINIMUM_FILTER_LOGIT = -1e30
# Below any filter logit: a pixel outside a frame gets no weight.
_OUTSIDE_FRAME_LOGIT = 2 * _MINIMUM_FILTER_LOGIT


def validate_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """Checks that `image_shape` is (height, width, channels), all positive.

    Args:
      image_shape: the shape of one image.

    Returns:
      The shape as a tuple of three Python ints.

    Raises:
      ValueError: if the shape is not three positive integers.
    """
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0
        for size in shape
    ):
        raise ValueError(
            "image_shape must be (height, width, channels), three positive "
            f"integers; got {image_shape!r}."
        )
    return shape


def validate_positive_int(name: str, value) -> int:
    """Checks that `value` is an int >= 1; raises ValueError naming `name`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return value


def validate_frame_size(frame_size, image_shape) -> int | None:
    """None, or a frame side 1..min(height, width) of the image.

    Raises:
      ValueError: otherwise.
    """
    if frame_size is None:
        return None
    smallest = min(image_shape[:2])
    if (
        isinstance(frame_size, bool)
        or not isinstance(frame_size, (int, np.integer))
        or not 1 <= frame_size <= smallest
    ):
        raise ValueError(
            "frame_size must be None or an integer between 1 and "
            f"min(height, width) = {smallest} for images of shape "
            f"{tuple(image_shape)}; got {frame_size!r}."
        )
    return int(frame_size)


def validate_grid_size(
    name: str, grid_size: int, image_shape: tuple[int, int, int]
) -> int:
    """Checks an attention grid size N against the image it looks at.

    Args:
      name: the argument's name, for the error message.
      grid_size: N, the number of filters along each axis.
      image_shape: (height, width, channels).

    Returns:
      `grid_size`.

    Raises:
      ValueError: if N is not an integer in [1, max(height, width)].
    """
    largest = max(image_shape[0], image_shape[1])
    if (
        not isinstance(grid_size, int)
        or isinstance(grid_size, bool)
        or not 1 <= grid_size <= largest
    ):
        raise ValueError(
            f"{name} must be an integer between 1 and max(height, width) = "
            f"{largest} for images of shape {image_shape}; got {grid_size!r}."
        )
    return grid_size


def axis_filterbank(
    center: Tensor,
    stride: Tensor,
    variance: Tensor,
    num_filters: int,
    size: int,
    frame_start: Tensor | None = None,
    frame_size: int | None = None,
) -> Tensor:
    """Gaussian filters along one image axis (eqs. 19-20 and 25-26).

    The filter index i runs over 1..N and the pixel coordinate a over
    1..size, both 1-based as in the paper, so that the grid of filter
    centres is centred on `center`:

        mu^i    = center + (i - N/2 - 0.5) * stride              (19, 20)
        F[i, a] = exp(-(a - mu^i)^2 / (2 variance)) / Z          (25, 26)

    Z normalises each row to sum to 1. That normalisation is a softmax over
    a, computed stably, so rows stay finite for any finite parameters.

    Args:
      center: [batch] grid centre g (pixels, 1-based); any leading shape
        works, e.g. [batch, 2] for the two axes of a square image.
      stride: distance delta between adjacent filters, same shape as
        `center` (or broadcastable to it).
      variance: filter variance sigma^2, same shape as `stride`.
      num_filters: N, filters along this axis.
      size: pixels along this axis (A for columns, B for rows).
      frame_start: optional, shaped as `center`: the filters cover only
        the frame_size pixels after this one (pixels frame_start + 1 ..
        frame_start + frame_size, 1-based), zero elsewhere, each row
        normalised over the frame: the axis of an image of that size.
      frame_size: the frame's pixels, with `frame_start`.

    Returns:
      [batch, num_filters, size] (in general [*center.shape, num_filters,
      size]) filterbank whose rows sum to 1.
    """
    dtype = keras.backend.standardize_dtype(center.dtype)
    # i - N/2 - 0.5 for i = 1..N, and the pixel coordinates a = 1..size.
    offsets = np.arange(1, num_filters + 1) - num_filters / 2.0 - 0.5
    offsets = ops.convert_to_tensor(offsets.astype(dtype))
    pixels = ops.convert_to_tensor(np.arange(1, size + 1).astype(dtype))
    filter_centers = (
        center[..., None] + offsets * stride[..., None]
    )  # mu^i, [..., N]
    squared_distance = ops.square(
        pixels - filter_centers[..., None]
    )  # [..., N, size]
    variance = ops.maximum(variance, _MINIMUM_VARIANCE)[..., None, None]
    logits = ops.maximum(
        -squared_distance / (2.0 * variance), _MINIMUM_FILTER_LOGIT
    )
    if frame_start is not None:
        start = ops.cast(frame_start, dtype)[..., None]  # [..., 1]
        inside = ops.logical_and(
            pixels > start, pixels <= start + frame_size
        )  # [..., size]
        logits = ops.where(inside[..., None, :], logits, _OUTSIDE_FRAME_LOGIT)
    return ops.softmax(logits, axis=-1)


def filterbanks(
    window: Tensor,
    num_filters: int,
    height: int,
    width: int,
    frame_corners: Tensor | None = None,
    frame_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The horizontal and vertical filterbanks of an attention window.

    Args:
      window: [batch, 5] attention window, see `WINDOW_PARAMETER_NAMES`.
      num_filters: N.
      height: B, image rows.
      width: A, image columns.
      frame_corners: optional [batch, 2] (x, y): the filters cover only
        the frame_size x frame_size pixels after this corner, normalised
        over them (`axis_filterbank`'s frame).
      frame_size: the frame's side, with `frame_corners`.

    Returns:
      (filterbank_x [batch, N, width], filterbank_y [batch, N, height]):
      F_X built from g_X (eq. 25) and F_Y from g_Y (eq. 26).
    """
    if (frame_corners is None) != (frame_size is None):
        raise ValueError("frame_corners and frame_size go together.")
    if height == width:
        # One set of ops for both axes: centres [batch, 2] = (g_X, g_Y).
        banks = axis_filterbank(
            window[:, 0:2],
            window[:, 3:4],
            window[:, 2:3],
            num_filters,
            width,
            frame_corners,
            frame_size,
        )  # [batch, 2, N, size]
        return banks[:, 0], banks[:, 1]
    center_x, center_y, variance, stride = (window[:, i] for i in range(4))
    start_x = start_y = None
    if frame_corners is not None:
        start_x, start_y = frame_corners[:, 0], frame_corners[:, 1]
    filterbank_x = axis_filterbank(
        center_x, stride, variance, num_filters, width, start_x, frame_size
    )
    filterbank_y = axis_filterbank(
        center_y, stride, variance, num_filters, height, start_y, frame_size
    )
    return filterbank_x, filterbank_y


def apply_read_filters(
    images: Tensor, filterbank_x: Tensor, filterbank_y: Tensor
) -> Tensor:
    """Extracts a glimpse F_Y x F_X^T from every channel (eq. 27, no gamma).

    Args:
      images: [batch, height, width, channels].
      filterbank_x: [batch, N, width].
      filterbank_y: [batch, N, height].

    Returns:
      [batch, N, N, channels] glimpse.
    """
    # Two batched matmuls (faster than the equivalent einsum on CPU):
    # over rows, F_Y [b, N, H] @ x [b, H, W * C] -> [b, N, W, C]; then
    # over columns, with the channels moved next to N.
    _, height, width, channels = images.shape
    num_filters = filterbank_y.shape[1]
    rows = ops.matmul(
        filterbank_y, ops.reshape(images, (-1, height, width * channels))
    )
    if channels > 1:
        rows = ops.reshape(rows, (-1, num_filters, width, channels))
        rows = ops.transpose(rows, (0, 1, 3, 2))
    rows = ops.reshape(rows, (-1, num_filters * channels, width))
    glimpse = ops.matmul(
        rows, ops.transpose(filterbank_x, (0, 2, 1))
    )  # [b, N*C, N]
    glimpse = ops.reshape(glimpse, (-1, num_filters, channels, num_filters))
    return ops.transpose(glimpse, (0, 1, 3, 2))


def apply_write_filters(
    patch: Tensor, filterbank_x: Tensor, filterbank_y: Tensor
) -> Tensor:
    """Spreads a patch over the image, F_Y^T w F_X (eq. 29, no gamma).

    This is the adjoint of `apply_read_filters` for the same filterbanks.

    Args:
      patch: [batch, N, N, channels] patch w.
      filterbank_x: [batch, N, width].
      filterbank_y: [batch, N, height].

    Returns:
      [batch, height, width, channels].
    """
    # Two batched matmuls: F_Y^T [b, H, N] @ w [b, N, N * C] -> [b, H, N, C],
    # then over columns with the channels moved next to H.
    _, num_filters, _, channels = patch.shape
    height, width = filterbank_y.shape[2], filterbank_x.shape[2]
    rows = ops.matmul(
        ops.transpose(filterbank_y, (0, 2, 1)),
        ops.reshape(patch, (-1, num_filters, num_filters * channels)),
    )  # [b, H, N * C]
    if channels == 1:
        return ops.reshape(
            ops.matmul(rows, filterbank_x), (-1, height, width, 1)
        )
    rows = ops.reshape(rows, (-1, height, num_filters, channels))
    rows = ops.reshape(
        ops.transpose(rows, (0, 1, 3, 2)), (-1, height * channels, num_filters)
    )
    update = ops.reshape(
        ops.matmul(rows, filterbank_x), (-1, height, channels, width)
    )
    return ops.transpose(update, (0, 1, 3, 2))


def window_from_head_outputs(
    head_outputs: Tensor,
    grid_size: int,
    image_shape: Sequence[int],
    frame_corners: Tensor | None = None,
    frame_size: int | None = None,
) -> Tensor:
    """Eqs. 22-24: the linear head's outputs (eq. 21) to a window.

    Without a frame the window is placed on the whole image, as in the
    paper. With one, eqs. 22-24 are applied to a square frame of
    `frame_size` pixels whose top-left corner is `frame_corners` (pixels,
    per example): g = corner + (S + 1) / 2 * (g~ + 1), delta = (S - 1) /
    (N - 1) * delta~. The same head outputs then place the same window
    relative to each frame (the instructed quadrant of
    `ConditionalDrawModel` with `place_frames`), whose read and write
    filters then cover the frame alone (`filterbanks`): within its frame
    a window is the paper's on an image of the frame's size.

    Args:
      head_outputs: [batch, 5] (g~_X, g~_Y, log sigma^2, log delta~,
        log gamma), W(h^dec) of eq. 21.
      grid_size: N.
      image_shape: (height, width, channels).
      frame_corners: optional float [batch, 2] (x, y): the pixels left of
        and above the frame (0 for a frame at the image's top-left).
      frame_size: S, the frame's side in pixels; with `frame_corners`.

    Returns:
      [batch, 5] window (g_X, g_Y, sigma^2, delta, gamma), see
      `WINDOW_PARAMETER_NAMES`.
    """
    height, width, _ = image_shape
    if (frame_corners is None) != (frame_size is None):
        raise ValueError("frame_corners and frame_size go together.")
    if frame_size is not None:
        height = width = frame_size
    # g = (size + 1) / 2 * (g~ + 1) for X (A = width) and Y (B = height).
    dtype = keras.backend.standardize_dtype(head_outputs.dtype)
    center_scale = np.array([(width + 1) / 2.0, (height + 1) / 2.0], dtype)
    centers = center_scale * (head_outputs[:, 0:2] + 1.0)  # eqs. 22, 23
    if frame_corners is not None:
        centers = centers + ops.cast(frame_corners, dtype)
    # sigma^2, delta = (max(A, B) - 1) / (N - 1) * delta~ (eq. 24), gamma.
    # For N = 1 the stride does not move the single filter; the factor
    # (max(A, B) - 1) avoids dividing by zero.
    stride_scale = (max(height, width) - 1) / max(grid_size - 1, 1)
    exp_scale = np.array([1.0, stride_scale, 1.0], dtype)
    return ops.concatenate(
        [centers, exp_scale * ops.exp(head_outputs[:, 2:5])], axis=-1
    )


def read_glimpses(
    images: Tensor,
    error_images: Tensor,
    window: Tensor,
    glimpse_size: int,
    frame_corners: Tensor | None = None,
    frame_size: int | None = None,
) -> Tensor:
    """Eq. 27: gamma * [F_Y x F_X^T, F_Y x_hat F_X^T], flattened.

    Args:
      images: [batch, height, width, channels], x.
      error_images: [batch, height, width, channels], x_hat.
      window: [batch, 5] read window.
      glimpse_size: N.
      frame_corners: optional [batch, 2]: the filters see the frame at
        this corner alone (`filterbanks`).
      frame_size: the frame's side, with `frame_corners`.

    Returns:
      [batch, 2 * N * N * channels]: per glimpse position (j, i), the
      channels of x followed by those of x_hat.
    """
    _, height, width, channels = images.shape
    filterbank_x, filterbank_y = filterbanks(
        window, glimpse_size, height, width, frame_corners, frame_size
    )
    both = ops.concatenate([images, error_images], axis=-1)  # [b, H, W, 2C]
    glimpses = apply_read_filters(both, filterbank_x, filterbank_y)
    # gamma, [batch, 1]. A slice: inside tf.function on TF 2.21 (CPU),
    # window[:, 4, None] lost its new axis at run time.
    intensity = window[:, 4:5]
    flat = ops.reshape(glimpses, (-1, 2 * glimpse_size**2 * channels))
    return intensity * flat


def write_patch(
    patch: Tensor,
    window: Tensor,
    patch_size: int,
    image_shape: Sequence[int],
    frame_corners: Tensor | None = None,
    frame_size: int | None = None,
) -> Tensor:
    """Eq. 29: 1 / gamma^ * F^_Y^T w F^_X.

    Args:
      patch: [batch, N * N * channels] w_t (eq. 28), flattened.
      window: [batch, 5] write window.
      patch_size: N.
      image_shape: (height, width, channels).
      frame_corners: optional [batch, 2]: the update falls in the frame
        at this corner alone, zero elsewhere (`filterbanks`).
      frame_size: the frame's side, with `frame_corners`.

    Returns:
      [batch, height, width, channels] canvas update.
    """
    height, width, channels = image_shape
    filterbank_x, filterbank_y = filterbanks(
        window, patch_size, height, width, frame_corners, frame_size
    )
    patch = ops.reshape(patch, (-1, patch_size, patch_size, channels))
    intensity = ops.reshape(window[:, 4:5], (-1, 1, 1, 1))  # gamma^
    # 1 / gamma^ scales the N x N patch rather than the H x W update (the
    # same product): the gradient then keeps the patch, not the update, for
    # every step of the unrolled loop.
    return apply_write_filters(patch / intensity, filterbank_x, filterbank_y)


@keras.saving.register_keras_serializable(package="draw_tf")
class AttentionWindowHead(keras.layers.Layer):
    """Linear head from the decoder state to an attention window (eqs. 21-24).

    (g~_X, g~_Y, log sigma^2, log delta~, log gamma) = W(h^dec)      (21)
    g_X   = (A + 1) / 2 * (g~_X + 1)                                  (22)
    g_Y   = (B + 1) / 2 * (g~_Y + 1)                                  (23)
    delta = (max(A, B) - 1) / (N - 1) * delta~                        (24)

    For N = 1 the stride does not move the single filter (its offset
    i - N/2 - 0.5 is 0), and eq. 24 would divide by zero; the factor
    (max(A, B) - 1) is used instead.

    With `frame_size` S, A = B = S and the window is placed in a frame
    given at each call (`window_from_head_outputs`).

    Input: [batch, decoder_units] (and, with a frame, frame_corners
    [batch, 2]). Output: [batch, 5], see `WINDOW_PARAMETER_NAMES`.
    """

    def __init__(
        self,
        grid_size: int,
        image_shape: Sequence[int],
        initial_log_variance: float = 0.0,
        frame_size: int | None = None,
        **kwargs,
    ):
        """Creates the head.

        Args:
          grid_size: N, filters along each axis of the window.
          image_shape: (height, width, channels) of the images attended to.
          initial_log_variance: initial bias of the log sigma^2 output, so
            log sigma^2 for a zero decoder state (the first step).
          frame_size: S, the side of the frame the windows are placed in
            (its corner given to each call), 1..min(height, width); None
            places them on the whole image.
          **kwargs: base Layer arguments (name, dtype, ...).
        """
        super().__init__(**kwargs)
        self.image_shape = validate_image_shape(image_shape)
        self.grid_size = validate_grid_size(
            "grid_size", grid_size, self.image_shape
        )
        self.initial_log_variance = float(initial_log_variance)
        self.frame_size = validate_frame_size(frame_size, self.image_shape)
        self.linear = keras.layers.Dense(
            5,
            bias_initializer=keras.initializers.Constant(
                [0.0, 0.0, self.initial_log_variance, 0.0, 0.0]
            ),
            name="linear",
        )

    def build(self, input_shape):
        self.linear.build(input_shape)

    def call(self, decoder_hidden, frame_corners=None):
        if (frame_corners is None) != (self.frame_size is None):
            raise ValueError(
                "frame_corners [batch, 2] are needed exactly when the head "
                f"has a frame_size; frame_size={self.frame_size}."
            )
        return window_from_head_outputs(
            self.linear(decoder_hidden),
            self.grid_size,
            self.image_shape,
            frame_corners,
            self.frame_size,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            grid_size=self.grid_size,
            image_shape=list(self.image_shape),
            initial_log_variance=self.initial_log_variance,
        )
        if self.frame_size is not None:
            config.update(frame_size=self.frame_size)
        return config


@keras.saving.register_keras_serializable(package="draw_tf")
class AttentiveRead(keras.layers.Layer):
    """Selective-attention read (eq. 27), with its own window head.

    read(x, x_hat, h^dec_{t-1}) = gamma * [F_Y x F_X^T, F_Y x_hat F_X^T]

    Call arguments:
      images: [batch, height, width, channels], x.
      error_images: [batch, height, width, channels], x_hat (eq. 3).
      decoder_hidden: [batch, decoder_units], h^dec_{t-1}.
      frame_corners: [batch, 2], exactly with a `frame_size`.

    Returns:
      (glimpses [batch, 2 * N * N * channels], window [batch, 5]).
    """

    def __init__(
        self,
        glimpse_size: int,
        image_shape: Sequence[int],
        frame_size: int | None = None,
        **kwargs,
    ):
        """Creates the read.

        Args:
          glimpse_size: N, the glimpse is N x N per channel.
          image_shape: (height, width, channels).
          frame_size: windows placed in a frame of this side, its corner
            given to each call (`AttentionWindowHead`); None: the image.
          **kwargs: base Layer arguments.
        """
        super().__init__(**kwargs)
        self.image_shape = validate_image_shape(image_shape)
        self.glimpse_size = validate_grid_size(
            "glimpse_size", glimpse_size, self.image_shape
        )
        self.frame_size = validate_frame_size(frame_size, self.image_shape)
        self.window_head = AttentionWindowHead(
            self.glimpse_size,
            self.image_shape,
            frame_size=self.frame_size,
            name="window_head",
        )

    @property
    def output_size(self) -> int:
        """Length of the flattened glimpse vector, 2 * N * N * channels."""
        return 2 * self.glimpse_size**2 * self.image_shape[2]

    def build(
        self,
        images_shape=None,
        error_images_shape=None,
        decoder_hidden_shape=None,
    ):
        # Keras passes the shape of every call argument; only the decoder
        # state's matters, the image shape is fixed by the config.
        self.window_head.build(decoder_hidden_shape)

    def call(self, images, error_images, decoder_hidden, frame_corners=None):
        window = self.window_head(decoder_hidden, frame_corners)
        glimpses = read_glimpses(
            images,
            error_images,
            window,
            self.glimpse_size,
            frame_corners,
            self.frame_size,
        )
        return glimpses, window

    def get_config(self):
        config = super().get_config()
        config.update(
            glimpse_size=self.glimpse_size,
            image_shape=list(self.image_shape),
        )
        if self.frame_size is not None:
            config.update(frame_size=self.frame_size)
        return config


@keras.saving.register_keras_serializable(package="draw_tf")
class AttentiveWrite(keras.layers.Layer):
    """Selective-attention write (eqs. 28-29), with its own window head.

    w_t = W(h^dec_t)                                   (28)  N x N patch
    write(h^dec_t) = 1 / gamma^ * F^_Y^T w_t F^_X      (29)

    Input: decoder_hidden [batch, decoder_units], h^dec_t; with a
    `frame_size`, frame_corners [batch, 2] too.

    Returns:
      (canvas_update [batch, height, width, channels], window [batch, 5]).
    """

    def __init__(
        self,
        patch_size: int,
        image_shape: Sequence[int],
        frame_size: int | None = None,
        **kwargs,
    ):
        """Creates the write.

        Args:
          patch_size: N, the written patch is N x N per channel.
          image_shape: (height, width, channels).
          frame_size: windows placed in a frame of this side, its corner
            given to each call (`AttentionWindowHead`); None: the image.
          **kwargs: base Layer arguments.
        """
        super().__init__(**kwargs)
        self.image_shape = validate_image_shape(image_shape)
        self.patch_size = validate_grid_size(
            "patch_size", patch_size, self.image_shape
        )
        self.frame_size = validate_frame_size(frame_size, self.image_shape)
        channels = self.image_shape[2]
        self.patch_layer = keras.layers.Dense(
            self.patch_size**2 * channels, name="patch"
        )
        self.window_head = AttentionWindowHead(
            self.patch_size,
            self.image_shape,
            frame_size=self.frame_size,
            name="window_head",
        )

    def build(self, decoder_hidden_shape):
        self.patch_layer.build(decoder_hidden_shape)
        self.window_head.build(decoder_hidden_shape)

    def call(self, decoder_hidden, frame_corners=None):
        window = self.window_head(decoder_hidden, frame_corners)
        update = write_patch(
            self.patch_layer(decoder_hidden),
            window,
            self.patch_size,
            self.image_shape,
            frame_corners,
            self.frame_size,
        )
        return update, window

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size, image_shape=list(self.image_shape)
        )
        if self.frame_size is not None:
            config.update(frame_size=self.frame_size)
        return config


@keras.saving.register_keras_serializable(package="draw_tf")
class FullImageRead(keras.layers.Layer):
    """Read without attention (eq. 17): read(x, x_hat, h) = [x, x_hat].

    Call arguments:
      images: [batch, height, width, channels].
      error_images: [batch, height, width, channels].

    Returns:
      [batch, 2 * height * width * channels].
    """

    def __init__(self, image_shape: Sequence[int], **kwargs):
        """Creates the read.

        Args:
          image_shape: (height, width, channels).
          **kwargs: base Layer arguments.
        """
        super().__init__(**kwargs)
        self.image_shape = validate_image_shape(image_shape)

    @property
    def output_size(self) -> int:
        """Length of the read vector, 2 * height * width * channels."""
        height, width, channels = self.image_shape
        return 2 * height * width * channels

    def call(self, images, error_images):
        pixels = self.output_size // 2
        return ops.concatenate(
            [
                ops.reshape(images, (-1, pixels)),
                ops.reshape(error_images, (-1, pixels)),
            ],
            axis=-1,
        )

    def get_config(self):
        config = super().get_config()
        config.update(image_shape=list(self.image_shape))
        return config


@keras.saving.register_keras_serializable(package="draw_tf")
class DenseWrite(keras.layers.Layer):
    """Write without attention (eq. 18): write(h^dec_t) = W(h^dec_t).

    Input: decoder_hidden [batch, decoder_units].
    Output: canvas_update [batch, height, width, channels].
    """

    def __init__(self, image_shape: Sequence[int], **kwargs):
        """Creates the write.

        Args:
          image_shape: (height, width, channels).
          **kwargs: base Layer arguments.
        """
        super().__init__(**kwargs)
        self.image_shape = validate_image_shape(image_shape)
        height, width, channels = self.image_shape
        self.linear = keras.layers.Dense(
            height * width * channels, name="linear"
        )

    def build(self, decoder_hidden_shape):
        self.linear.build(decoder_hidden_shape)

    def call(self, decoder_hidden):
        return ops.reshape(self.linear(decoder_hidden), (-1, *self.image_shape))

    def get_config(self):
        config = super().get_config()
        config.update(image_shape=list(self.image_shape))
        return config
