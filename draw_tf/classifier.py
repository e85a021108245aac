"""DRAW's read attention as a classifier (paper Section 4.1, Table 1).

An LSTM with read attention only takes T glimpses of an image, each an
N x N grid of Gaussian filters placed by a linear head on the previous
LSTM state (eqs. 19-27, without the error image), and a softmax on the
last state classifies the image. The paper's cluttered-MNIST model: 8
glimpses of 12 x 12, 256 LSTM units, 3.36% test error on 100 x 100
cluttered translated MNIST.

    window_t  = W(h_{t-1})                                     (21-24)
    glimpse_t = gamma * F_Y x F_X^T                            (27)
    h_t       = LSTM(h_{t-1}, glimpse_t)
    p(y | x)  = softmax(V h_T)
"""

import math
from collections.abc import Sequence

import keras
from keras import ops

from draw_tf import attention, losses
from draw_tf.backend import Tensor


@keras.saving.register_keras_serializable(package="draw_tf")
class DrawClassifier(keras.Model):
    """A recurrent attention classifier.

    `model(images)` takes [batch, height, width, channels] in [0, 1] and
    returns a dict: logits [batch, num_classes] and read_windows
    [batch, T, 5] (see `draw_tf.attention.WINDOW_PARAMETER_NAMES`).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_glimpses: int = 8,
        glimpse_size: int = 12,
        units: int = 256,
        num_classes: int = 10,
        **kwargs,
    ):
        """Creates and builds the classifier.

        Args:
          image_shape: (height, width, channels).
          num_glimpses: T, >= 1.
          glimpse_size: N, 1..max(height, width).
          units: LSTM units, >= 1.
          num_classes: >= 2.
          **kwargs: base Model arguments.

        Raises:
          ValueError: if an argument is out of its range.
        """
        super().__init__(**kwargs)
        self.image_shape = attention.validate_image_shape(image_shape)
        self.num_glimpses = attention.validate_positive_int(
            "num_glimpses", num_glimpses
        )
        self.units = attention.validate_positive_int("units", units)
        if attention.validate_positive_int("num_classes", num_classes) < 2:
            raise ValueError(
                f"num_classes must be an integer >= 2; got {num_classes!r}."
            )
        self.glimpse_size = attention.validate_grid_size(
            "glimpse_size", glimpse_size, self.image_shape
        )
        self.num_classes = num_classes
        # The first window (from h_0 = 0) spans the image (g~ = 0, delta~ =
        # 1). With sigma = 1 its 12 x 12 filters, 9 pixels apart on a
        # 100 x 100 image, would sample thin strokes at points and mostly
        # miss them; sigma = delta / 2 blurs the image at the grid's own
        # spacing. Without this the cluttered-MNIST classifier stayed near
        # chance for 6 epochs; with it, it learns from the first epoch.
        height, width, _ = self.image_shape
        stride = (max(height, width) - 1) / max(glimpse_size - 1, 1)
        self.window_head = attention.AttentionWindowHead(
            glimpse_size,
            self.image_shape,
            initial_log_variance=2.0 * math.log(max(stride / 2.0, 1.0)),
            name="window_head",
        )
        self.lstm = keras.layers.LSTMCell(units, name="lstm")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.build()

    def build(self, input_shape=None):
        """Creates every variable; all shapes follow from the config."""
        channels = self.image_shape[2]
        self.window_head.build((None, self.units))
        self.lstm.build((None, self.glimpse_size**2 * channels))
        self.classifier.build((None, self.units))

    def call(self, images):
        images = ops.convert_to_tensor(images, "float32")
        height, width, channels = self.image_shape
        batch = ops.shape(images)[0]
        hidden = ops.zeros((batch, self.units))
        cell = ops.zeros((batch, self.units))
        windows = []
        for _ in range(self.num_glimpses):
            window = self.window_head(hidden)
            filterbank_x, filterbank_y = attention.filterbanks(
                window, self.glimpse_size, height, width
            )
            glimpse = attention.apply_read_filters(
                images, filterbank_x, filterbank_y
            )
            glimpse = window[:, 4:5] * ops.reshape(
                glimpse, (-1, self.glimpse_size**2 * channels)
            )
            hidden, (_, cell) = self.lstm(glimpse, [hidden, cell])
            windows.append(window)
        return {
            "logits": self.classifier(hidden),
            "read_windows": ops.stack(windows, axis=1),
        }

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The loss `fit()` minimises: the mean cross-entropy, nats.

        Keras calls it with `x` the images [batch, height, width,
        channels], `y` their int labels [batch] and `y_pred` this model's
        outputs on them. It also updates the `accuracy` metric.

        Returns:
          A scalar: the (weighted) mean cross-entropy over the batch.
        """
        del training  # no dropout
        if y_pred is None:
            y_pred = self(x)
        terms = classification_terms(y, y_pred["logits"])
        self.accuracy_tracker.update_state(
            terms["correct"], sample_weight=sample_weight
        )
        return losses.weighted_mean(terms["cross_entropy"], sample_weight)

    def get_config(self):
        return {
            "name": self.name,
            "image_shape": list(self.image_shape),
            "num_glimpses": self.num_glimpses,
            "glimpse_size": self.glimpse_size,
            "units": self.units,
            "num_classes": self.num_classes,
        }


def classification_terms(labels, logits) -> dict[str, Tensor]:
    """Per-example cross-entropy (nats) and correctness.

    Args:
      labels: [batch] int class indices.
      logits: [batch, num_classes].

    Returns:
      {"cross_entropy": [batch], "correct": [batch] float 0 or 1}.
    """
    labels = ops.cast(labels, "int32")
    return {
        "cross_entropy": ops.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        ),
        "correct": ops.cast(
            ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels),
            "float32",
        ),
    }
