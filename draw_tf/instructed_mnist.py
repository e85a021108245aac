"""Instructed MNIST: episodes of instructions, drawn turn by turn on a canvas.

A task after GeNeVA ("Tell, Draw, and Repeat", ICCV 2019) built from MNIST
digits: an episode is K turns on one 60 x 60 canvas. Every turn gives an
instruction, a digit class (0-9) and a place (one of the canvas's four
quadrants: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; the
places of one episode distinct), and its target is the previous target
with a new MNIST digit of that class added in that quadrant (a random
shift of 0-2 pixels inside its 30 x 30 quadrant), added and clipped as in
two-digit MNIST. An episode of K turns holds its 1..K-turn prefixes:
after turn k the target is that of the k-turn episode.

    episodes = instructed_mnist.episodes(digits, labels, count=8, turns=3,
                                         seed=[0, 1])
    episodes.classes    # int64 [8, 3]
    episodes.places     # int64 [8, 3]
    episodes.targets    # uint8 [8, 3, 60, 60, 1]: after turns 1, 2, 3

    instructed_mnist.parse("7 top-left; 3 bottom-right")
    # [Instruction(digit=7, place=0), Instruction(digit=3, place=3)]

Deterministic for its seed (numpy's default_rng); digits come from the
split the caller passes (train, validation or test).
"""

import dataclasses
import re

import numpy as np

DIGIT_SIZE = 28
CANVAS_SIZE = 60
QUADRANT_SIZE = CANVAS_SIZE // 2
# The most a digit is shifted inside its quadrant, each way.
MAX_SHIFT = QUADRANT_SIZE - DIGIT_SIZE
PLACES = ("top-left", "top-right", "bottom-left", "bottom-right")
NUM_CLASSES = 10
DEFAULT_TURNS = 3


class InstructionError(ValueError):
    """An instruction that is not "<digit> <place>"; one line."""


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One turn's instruction: draw `digit` at `place` (0-3, `PLACES`)."""

    digit: int
    place: int

    def __str__(self):
        return f"{self.digit} {PLACES[self.place]}"


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Instructed episodes.

    Attributes:
      classes: int64 [count, turns], each turn's digit class.
      places: int64 [count, turns], each turn's quadrant (distinct within
        an episode).
      targets: uint8 [count, turns, 60, 60, 1], the canvas after each turn.
      sources: int64 [count, turns], the index of each turn's digit in the
        digits the episodes were drawn from.
      positions: int64 [count, turns, 2], each digit's (top, left) corner.
    """

    classes: np.ndarray
    places: np.ndarray
    targets: np.ndarray
    sources: np.ndarray
    positions: np.ndarray


def quadrant_corner(place: int) -> tuple[int, int]:
    """The (top, left) pixel of quadrant `place` on the canvas."""
    return (place // 2) * QUADRANT_SIZE, (place % 2) * QUADRANT_SIZE


def episodes(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    turns: int = DEFAULT_TURNS,
    seed=0,
) -> Episodes:
    """`count` random episodes of `turns` turns from these digits.

    Args:
      digits: uint8 [n, 28, 28] or [n, 28, 28, 1] MNIST digits.
      labels: int [n], their classes; every class 0-9 present.
      count: episodes.
      turns: turns per episode, 1..4 (the places are distinct).
      seed: an int or a sequence of ints (numpy's default_rng).

    Returns:
      The episodes: random classes, distinct random places, a random digit
      of each class, a random shift inside the quadrant.

    Raises:
      ValueError: for turns outside 1..4 or a class without digits.
    """
    digits, labels = _check(digits, labels, turns)
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, NUM_CLASSES, size=(count, turns))
    places = np.argsort(rng.random((count, len(PLACES))), axis=1)[:, :turns]
    return _draw(digits, labels, classes, places, rng)


def instructed(
    digits: np.ndarray,
    labels: np.ndarray,
    classes,
    places,
    seed=0,
) -> Episodes:
    """Episodes of given instructions, with random digits and shifts.

    Args:
      digits: uint8 [n, 28, 28] or [n, 28, 28, 1] MNIST digits.
      labels: int [n], their classes; every class 0-9 present.
      classes: int [count, turns] digit classes 0-9.
      places: int [count, turns] quadrants 0-3, distinct within a row.
      seed: the choice of digits and shifts.

    Raises:
      ValueError: for a class or place out of range, or a repeated place.
    """
    classes = np.asarray(classes, np.int64)
    places = np.asarray(places, np.int64)
    if classes.ndim != 2 or classes.shape != places.shape:
        raise ValueError(
            f"classes and places must both be [count, turns]; got "
            f"{classes.shape} and {places.shape}."
        )
    digits, labels = _check(digits, labels, classes.shape[1])
    check_instructions(classes, places)
    return _draw(digits, labels, classes, places, np.random.default_rng(seed))


def check_instructions(classes: np.ndarray, places: np.ndarray) -> None:
    """Raises ValueError (one line) for a bad class, place or repeat."""
    if classes.size and not (0 <= classes.min() and classes.max() < 10):
        raise ValueError(f"classes must be in 0-9; got {classes.tolist()}.")
    if places.size and not (0 <= places.min() and places.max() < 4):
        raise ValueError(f"places must be in 0-3; got {places.tolist()}.")
    for row in places:
        if len(set(row.tolist())) != len(row):
            raise ValueError(
                f"the places of one episode must be distinct; got "
                f"{row.tolist()}."
            )


def _draw(digits, labels, classes, places, rng) -> Episodes:
    count, turns = classes.shape
    by_class = [np.flatnonzero(labels == c) for c in range(NUM_CLASSES)]
    sources = np.empty((count, turns), np.int64)
    positions = np.empty((count, turns, 2), np.int64)
    canvas = np.zeros((count, CANVAS_SIZE, CANVAS_SIZE), np.uint16)
    targets = np.empty((count, turns, CANVAS_SIZE, CANVAS_SIZE, 1), np.uint8)
    for turn in range(turns):
        for episode in range(count):
            pool = by_class[classes[episode, turn]]
            source = pool[rng.integers(len(pool))]
            top, left = quadrant_corner(int(places[episode, turn]))
            top += int(rng.integers(0, MAX_SHIFT + 1))
            left += int(rng.integers(0, MAX_SHIFT + 1))
            canvas[
                episode, top : top + DIGIT_SIZE, left : left + DIGIT_SIZE
            ] += digits[source]
            sources[episode, turn] = source
            positions[episode, turn] = (top, left)
        targets[:, turn, :, :, 0] = np.minimum(canvas, 255)
    return Episodes(
        classes=classes.astype(np.int64),
        places=places.astype(np.int64),
        targets=targets,
        sources=sources,
        positions=positions,
    )


def _check(digits, labels, turns):
    digits = np.asarray(digits)
    if digits.ndim == 4:
        digits = digits[..., 0]
    if digits.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(
            f"digits must be [n, 28, 28]; got {list(digits.shape)}."
        )
    labels = np.asarray(labels)
    if len(labels) != len(digits):
        raise ValueError(
            f"{len(labels)} labels for {len(digits)} digits; expected one each."
        )
    missing = sorted(set(range(NUM_CLASSES)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"no digits of class {missing} to draw from.")
    if not 1 <= turns <= len(PLACES):
        raise ValueError(
            f"turns must be 1-{len(PLACES)} (one place each); got {turns}."
        )
    return digits, labels


_INSTRUCTION = re.compile(r"^\s*(\d)\s+([a-z-]+)\s*$")


def parse(text: str, max_turns: int = len(PLACES)) -> list[Instruction]:
    """Instructions from text: "7 top-left; 3 top-right".

    Turns are separated by ";", each "<digit 0-9> <place>" with a place of
    `PLACES`; places distinct.

    Raises:
      InstructionError: one line naming the bad part and what is expected.
    """
    # A ";" after the last turn is allowed: "7 top-left;".
    parts = text.strip().removesuffix(";").split(";")
    if not text.strip():
        raise InstructionError(
            'no instructions; expected e.g. "7 top-left; 3 bottom-right".'
        )
    instructions = []
    for part in parts:
        if not part.strip():
            raise InstructionError(
                f"{text.strip()!r} has an empty turn between two ';'; "
                'expected e.g. "7 top-left; 3 bottom-right".'
            )
        match = _INSTRUCTION.match(part.lower())
        if not match or match.group(2) not in PLACES:
            raise InstructionError(
                f"{part.strip()!r} is not an instruction; expected "
                f"'<digit 0-9> <place>' with a place of {', '.join(PLACES)}, "
                'turns separated by ";".'
            )
        instructions.append(
            Instruction(int(match.group(1)), PLACES.index(match.group(2)))
        )
    places = [instruction.place for instruction in instructions]
    if len(set(places)) != len(places):
        raise InstructionError(
            f"{text.strip()!r} names a place twice; each turn draws in a "
            "place of its own."
        )
    if len(instructions) > max_turns:
        raise InstructionError(
            f"{len(instructions)} turns; this model draws at most {max_turns}."
        )
    return instructions


_CLASSES = re.compile(r"^\s*\d(\s*,\s*\d)*\s*$")


def parse_classes(text: str) -> list[int]:
    """Digit classes from text, for a class-conditional model: "7" or "7, 3".

    Each class is drawn as its own picture.

    Raises:
      InstructionError: one line naming the bad text and what is expected.
    """
    if not _CLASSES.match(text):
        raise InstructionError(
            f"{text.strip()!r} is not a list of digits; this model draws "
            'one digit per class, e.g. "7" or "7, 3, 1" (no places).'
        )
    return [int(part) for part in text.split(",")]


def describe(classes, places=None) -> str:
    """One episode's instructions as text: "7 top-left; 3 bottom-right"."""
    if places is None:
        return ", ".join(str(int(c)) for c in classes)
    return "; ".join(
        str(Instruction(int(c), int(p)))
        for c, p in zip(classes, places, strict=True)
    )
