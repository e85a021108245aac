"""Datasets built from MNIST digits for the paper's Section 4 experiments.

Two-digit MNIST (Section 4.3): 60 x 60 images, each holding two 28 x 28
MNIST digits at random positions; "where the two digits overlap, the pixel
intensities were added together at each point and clipped to be no greater
than one" (the paper), here 255 in uint8.

Cluttered translated MNIST (Section 4.1, after Mnih et al. 2014): 100 x 100
images holding one digit at a random position, the label, plus clutter:
`num_clutter` random `clutter_size` x `clutter_size` crops of OTHER digits
(never the target image) at random positions. Clutter is laid down first
and the digit over it (pixel-wise maximum).

Every generator is deterministic for its seed (numpy's default_rng) and
places every digit and crop fully inside the image. Images are uint8
[count, size, size, 1].
"""

import numpy as np

DIGIT_SIZE = 28
# The images' sides, as in the paper.
TWO_DIGIT_SIZE = 60
CLUTTERED_SIZE = 100
IMAGE_SIZES = {
    "two_digit_mnist": TWO_DIGIT_SIZE,
    "cluttered_mnist": CLUTTERED_SIZE,
}


def two_digit_mnist(
    digits: np.ndarray, count: int, seed: int, size: int = TWO_DIGIT_SIZE
) -> tuple[np.ndarray, dict]:
    """Images of two random digits each, added and clipped.

    Args:
      digits: uint8 [n, 28, 28] MNIST digits to draw from (n >= 2).
      count: number of images.
      seed: seed of the choice and placement.
      size: the images' height and width, >= 28.

    Returns:
      (images uint8 [count, size, size, 1], info) with info["sources"]
      [count, 2] the digit indices and info["positions"] [count, 2, 2]
      their (top, left) corners.
    """
    _check(digits, size)
    rng = np.random.default_rng(seed)
    sources = np.stack(
        [rng.choice(len(digits), size=2, replace=False) for _ in range(count)]
    )
    positions = rng.integers(0, size - DIGIT_SIZE + 1, size=(count, 2, 2))
    images = _draw_two_digits(digits, sources, positions, size)
    return images, {"sources": sources, "positions": positions}


def _draw_two_digits(digits, sources, positions, size):
    """uint8 [count, size, size, 1]: digits[sources[i]] at positions[i]."""
    count = len(sources)
    images = np.zeros((count, size, size), np.uint16)
    for index in range(count):
        for which in range(2):
            top, left = positions[index, which]
            images[index, top : top + DIGIT_SIZE, left : left + DIGIT_SIZE] += (
                digits[sources[index, which]]
            )
    return np.minimum(images, 255).astype(np.uint8)[..., np.newaxis]


def cluttered_mnist(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    size: int = CLUTTERED_SIZE,
    num_clutter: int = 8,
    clutter_size: int = 8,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Translated digits over clutter cropped from other digits.

    Args:
      digits: uint8 [n, 28, 28] MNIST digits (n >= 2).
      labels: [n] their labels.
      count: number of images.
      seed: seed of every choice and placement.
      size: the images' height and width, >= 28.
      num_clutter: clutter crops per image, >= 0.
      clutter_size: side of a crop, 1..28.

    Returns:
      (images uint8 [count, size, size, 1], labels int64 [count], info)
      with info["sources"] [count] the digit index, info["positions"]
      [count, 2] its (top, left), info["clutter_sources"] [count,
      num_clutter] the digits the crops come from.
    """
    _check(digits, size)
    if not 1 <= clutter_size <= DIGIT_SIZE:
        raise ValueError(f"clutter_size must be in 1..28; got {clutter_size}")
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, len(digits), size=count)
    images, info = _cluttered_around(
        digits, sources, rng, size, num_clutter, clutter_size
    )
    return images, np.asarray(labels)[sources].astype(np.int64), info


def _cluttered_around(digits, sources, rng, size, num_clutter, clutter_size):
    """Cluttered images around the given digits; placements from rng.

    Returns (images uint8 [count, size, size, 1], info) as in
    `cluttered_mnist`.
    """
    count = len(sources)
    images = np.zeros((count, size, size), np.uint8)
    positions = rng.integers(0, size - DIGIT_SIZE + 1, size=(count, 2))
    # Other digits: an offset in 1..n-1 never lands on the source.
    offsets = rng.integers(1, len(digits), size=(count, num_clutter))
    clutter_sources = (sources[:, np.newaxis] + offsets) % len(digits)
    crop_corners = rng.integers(
        0, DIGIT_SIZE - clutter_size + 1, size=(count, num_clutter, 2)
    )
    clutter_positions = rng.integers(
        0, size - clutter_size + 1, size=(count, num_clutter, 2)
    )
    for index in range(count):
        image = images[index]
        for piece in range(num_clutter):
            row, column = crop_corners[index, piece]
            crop = digits[clutter_sources[index, piece]][
                row : row + clutter_size, column : column + clutter_size
            ]
            top, left = clutter_positions[index, piece]
            window = image[top : top + clutter_size, left : left + clutter_size]
            np.maximum(window, crop, out=window)
        top, left = positions[index]
        window = image[top : top + DIGIT_SIZE, left : left + DIGIT_SIZE]
        np.maximum(window, digits[sources[index]], out=window)
    info = {
        "sources": sources,
        "positions": positions,
        "clutter_sources": clutter_sources,
    }
    return images[..., np.newaxis], info


def compose_around(
    dataset: str, digits: np.ndarray, sources: np.ndarray, seed
) -> np.ndarray:
    """Fresh composites around given digits (training-time resampling).

    The image i is built around digits[sources[i]]: for two_digit_mnist,
    with a partner drawn from the other digits, both at random positions;
    for cluttered_mnist, at a random position over 8 random 8 x 8 crops of
    other digits. Every choice besides `sources` comes from `seed`, so a
    batch is a pure function of (sources, seed).

    Args:
      dataset: "two_digit_mnist" (60 x 60) or "cluttered_mnist" (100 x 100).
      digits: uint8 [n, 28, 28] (n >= 2).
      sources: int [count] indices into digits.
      seed: numpy seed (an int or a sequence of non-negative ints).

    Returns:
      uint8 [count, size, size, 1]; a cluttered image's label is the label
      of digits[sources[i]].

    Raises:
      ValueError: for another dataset or bad digits.
    """
    sources = np.asarray(sources, np.int64)
    rng = np.random.default_rng(seed)
    if dataset == "two_digit_mnist":
        _check(digits, TWO_DIGIT_SIZE)
        partners = (sources + rng.integers(1, len(digits), len(sources))) % (
            len(digits)
        )
        positions = rng.integers(
            0, TWO_DIGIT_SIZE - DIGIT_SIZE + 1, size=(len(sources), 2, 2)
        )
        return _draw_two_digits(
            digits,
            np.stack([sources, partners], axis=1),
            positions,
            TWO_DIGIT_SIZE,
        )
    if dataset == "cluttered_mnist":
        _check(digits, CLUTTERED_SIZE)
        images, _ = _cluttered_around(
            digits, sources, rng, CLUTTERED_SIZE, 8, 8
        )
        return images
    raise ValueError(
        f"dataset must be two_digit_mnist or cluttered_mnist; got {dataset!r}"
    )


def _check(digits, size):
    if digits.ndim != 3 or digits.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(
            f"digits must be [n, 28, 28]; got shape {digits.shape}"
        )
    if len(digits) < 2:
        raise ValueError("at least two digits are needed")
    if size < DIGIT_SIZE:
        raise ValueError(f"size must be >= 28; got {size}")
