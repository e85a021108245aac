"""Where a cluttered-MNIST classifier's errors come from (pure NumPy).

`analyze` takes what the classifier returned on the test composites
(logits, read windows) with the labels and the digits' positions from the
generator, and splits the error into the digit not found (the last
window's centre far from the digit's centre) and the digit misread where it
was found; with the windows' distance to the digit at every glimpse, the
last windows' stride and filter width, the error by the digit's distance
from the border, and the commonest confusions.

Coordinates are the attention's: pixels numbered from 1 (eqs. 22-23), so a
digit whose top-left pixel has 0-based index (top, left) is centred at
(top + (digit_size + 1) / 2, left + (digit_size + 1) / 2).
"""

import collections

import numpy as np

# Digit's distance from the image border, in pixels: [low, high) bins.
BORDER_BINS = ((0, 3), (3, 10), (10, None))


def analyze(
    logits: np.ndarray,
    windows: np.ndarray,
    labels: np.ndarray,
    positions: np.ndarray,
    image_size: int,
    digit_size: int = 28,
    found_radius: float = 10.0,
    num_confusions: int = 10,
) -> dict:
    """The error's parts; see the module doc.

    Args:
      logits: [n, classes].
      windows: [n, T, 5] read windows (g_X, g_Y, sigma^2, delta, gamma).
      labels: [n] true classes.
      positions: [n, 2] each digit's (top, left), 0-based pixel indices.
      image_size: side of the square composites.
      digit_size: side of a digit.
      found_radius: the digit counts as found when the last window's centre
        is at most this many pixels from its centre.
      num_confusions: how many (true, predicted) pairs to list.

    Returns:
      A JSON-ready dict: num_examples, error_rate, not_found_fraction,
      error_rate_not_found, error_rate_found, error_from_not_found (the
      part of error_rate from images whose digit was not found),
      median_distance_per_glimpse [T], last_window_median_stride,
      last_window_median_filter_stddev, error_by_border_distance (one entry
      per `BORDER_BINS` bin: pixels, fraction, error_rate) and confusions
      (true, predicted, count), commonest first.

    Raises:
      ValueError: if the shapes disagree.
    """
    logits, windows = np.asarray(logits), np.asarray(windows)
    labels = np.asarray(labels).astype(np.int64)
    positions = np.asarray(positions).astype(np.float64)
    count = len(labels)
    if (
        logits.ndim != 2
        or windows.ndim != 3
        or windows.shape[2] != 5
        or positions.shape != (count, 2)
        or len(logits) != count
        or len(windows) != count
        or count == 0
    ):
        raise ValueError(
            "Expected logits [n, classes], windows [n, T, 5], labels [n] and "
            f"positions [n, 2] with n >= 1; got {logits.shape}, "
            f"{windows.shape}, {labels.shape}, {positions.shape}."
        )
    predicted = logits.argmax(axis=-1)
    wrong = predicted != labels
    center = positions + (digit_size + 1) / 2.0  # (row, column), 1-based
    distance = np.hypot(
        windows[:, :, 0] - center[:, 1:2], windows[:, :, 1] - center[:, 0:1]
    )  # [n, T]
    found = distance[:, -1] <= found_radius
    border = np.minimum(positions, image_size - digit_size - positions).min(1)

    def rate(mask):
        return float(wrong[mask].mean()) if mask.any() else None

    by_border = []
    for low, high in BORDER_BINS:
        mask = border >= low
        if high is not None:
            mask &= border < high
        by_border.append(
            {
                "pixels": [low, high],
                "fraction": float(mask.mean()),
                "error_rate": rate(mask),
            }
        )
    confusions = collections.Counter(
        zip(labels[wrong].tolist(), predicted[wrong].tolist(), strict=True)
    ).most_common(num_confusions)
    return {
        "num_examples": count,
        "found_radius_pixels": found_radius,
        "error_rate": float(wrong.mean()),
        "not_found_fraction": float((~found).mean()),
        "error_rate_not_found": rate(~found),
        "error_rate_found": rate(found),
        "error_from_not_found": float((wrong & ~found).mean()),
        "median_distance_per_glimpse": [
            round(float(value), 2) for value in np.median(distance, axis=0)
        ],
        "last_window_median_stride": float(np.median(windows[:, -1, 3])),
        "last_window_median_filter_stddev": float(
            np.median(np.sqrt(windows[:, -1, 2]))
        ),
        "error_by_border_distance": by_border,
        "confusions": [
            {"true": true, "predicted": guess, "count": number}
            for (true, guess), number in confusions
        ],
    }
