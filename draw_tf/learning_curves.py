"""Learning curves of shipped models: every stage of training, as a PNG.

A shipped record (`draw_tf.pretrained.record`) holds the validation curve
of the run it was shipped from and, for a warm restart (`--init_from`),
the stages before it (`record["history"]`, oldest first). `stages` lays
them end to end on one epoch axis; `plot` draws them, with the paper's
number as a dashed line where the paper gives one:

    python export/plot_curves.py --names=mnist_attention \
        --output_dir=docs/images

The picture is drawn with Pillow (a dependency already), not matplotlib.
"""

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The metric each task's validation curve holds, and how it is shown.
_METRICS = {
    "negative_elbo": ("validation -ELBO (nats)", 1.0),
    "error_rate": ("validation error (%)", 100.0),
}
_STAGE_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
_PAPER_COLOUR = (90, 90, 90)
_GRID_COLOUR = (225, 225, 225)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One run of a model's training, on the model's epoch axis.

    Attributes:
      label: what the run was, e.g. "shipped mnist_attention (2026-11-24)".
      epochs: [n] the epochs (counted from the model's first run) at which
        it was evaluated on validation.
      values: [n] the metric there, in the units shown (nats, or %).
      wall_hours: its training time, over the steps that were timed.
      untimed_steps: how many of its steps were not timed (their logs were
        lost: `record["untimed_steps"]`).
    """

    label: str
    epochs: np.ndarray
    values: np.ndarray
    wall_hours: float
    untimed_steps: int = 0

    def describe(self) -> str:
        """E.g. "mnist_attention: 8.08 h (+ 20,450 untimed steps), best 84.3".

        The hours are those timed; the best value is in the curve's units.
        """
        hours = f"{self.wall_hours:g} h"
        if self.untimed_steps:
            hours += f" (+ {self.untimed_steps:,} untimed steps)"
        best = (
            f", best {float(self.values.min()):.2f}" if self.values.size else ""
        )
        return f"{self.label}: {hours}{best}"


def metric_of(record: dict) -> str:
    """The validation curve's metric: "negative_elbo" or "error_rate"."""
    for entry in record.get("validation_curve", []):
        for key in _METRICS:
            if key in entry:
                return key
    raise ValueError(
        f"The record of {record.get('name', '?')} has no validation curve "
        f"of {' or '.join(_METRICS)}."
    )


def stages(record: dict) -> list[Stage]:
    """The record's stages, oldest first, one after the other in epochs.

    A stage's steps convert to epochs by its own steps per epoch (its
    steps over its epochs); each stage starts where the one before ended.
    A stage of another dataset (the class-conditional model an instructed
    one started from) keeps its label and hours, but its curve, of
    another task, is not on this axis: no points, no epochs taken.
    """
    metric = metric_of(record)
    scale = _METRICS[metric][1]
    dataset = record.get("config", {}).get("dataset")
    runs = list(record.get("history", [])) + [
        dict(
            record,
            source=f"{record.get('name', '?')} (shipped "
            f"{record.get('shipped', '')})",
            training_wall_hours=record.get("training_wall_hours", 0.0),
        )
    ]
    result, offset = [], 0.0
    for run in runs:
        if dataset and run.get("dataset") not in (None, "", dataset):
            result.append(
                Stage(
                    label=f"{run.get('source', '?')}, on {run['dataset']}",
                    epochs=np.zeros([0]),
                    values=np.zeros([0]),
                    wall_hours=float(run.get("training_wall_hours") or 0.0),
                )
            )
            continue
        curve = [e for e in run.get("validation_curve", []) if metric in e]
        steps, epochs = run.get("steps") or 0, run.get("epochs") or 0
        per_step = epochs / steps if steps and epochs else 0.0
        result.append(
            Stage(
                label=run.get("source", "?"),
                epochs=offset
                + per_step * np.array([e["step"] for e in curve], np.float64),
                values=scale * np.array([e[metric] for e in curve], np.float64),
                wall_hours=float(run.get("training_wall_hours") or 0.0),
                untimed_steps=sum(
                    later - earlier
                    for earlier, later in run.get("untimed_steps") or []
                ),
            )
        )
        offset += epochs
    return result


def total_wall_hours(record: dict) -> float:
    """The training time of every stage of the record's model."""
    return sum(stage.wall_hours for stage in stages(record))


@dataclasses.dataclass(frozen=True)
class Axes:
    """Maps data (epoch, value) to pixels of a plot's drawing area."""

    left: int
    top: int
    right: int
    bottom: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """(column, row) of the data point (x, y)."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        column = self.left + (x - x0) / (x1 - x0) * (self.right - self.left)
        row = self.bottom - (y - y0) / (y1 - y0) * (self.bottom - self.top)
        return column, row


def value_range(
    all_stages: list[Stage], paper: float | None
) -> tuple[float, float]:
    """The y range shown: the early epochs' large values are cut off.

    From a little below the lowest value (or the paper's) to the highest
    value after the first tenth of the epochs, so that the part of the
    curve where models differ fills the picture.
    """
    epochs = np.concatenate([stage.epochs for stage in all_stages])
    values = np.concatenate([stage.values for stage in all_stages])
    if not values.size:
        raise ValueError("No validation values to plot.")
    late = values[epochs >= 0.1 * epochs.max()]
    low = min(values.min(), paper if paper is not None else np.inf)
    high = max(late.max() if late.size else values.max(), low + 1e-6)
    if high - low < 1e-3:  # one point, or a flat curve: a unit either side
        low, high = low - 1.0, high + 1.0
    margin = 0.05 * (high - low)
    return float(low - margin), float(high + margin)


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values in [low, high]."""
    raw = (high - low) / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = next(
        factor * magnitude
        for factor in (1, 2, 2.5, 5, 10)
        if factor * magnitude >= raw
    )
    first = np.ceil(low / step) * step
    return [float(t) for t in np.arange(first, high + 1e-9, step)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1 else f"{value:.2g}"


def paper_value(record: dict) -> float | None:
    """The paper's number for the record's curve, in its units, or None."""
    metric = metric_of(record)
    value = record.get("paper", {}).get(metric)
    return None if value is None else _METRICS[metric][1] * value


def plot(
    record: dict, size: tuple[int, int] = (800, 480)
) -> tuple[Image.Image, Axes]:
    """The record's learning curve, every stage, with the paper's line.

    Args:
      record: a shipped model's record.json; its "paper" number, where it
        has one, is drawn dashed.
      size: (width, height) of the picture in pixels.

    Returns:
      (the picture, its Axes: where each data point was drawn).
    """
    all_stages = stages(record)
    paper = paper_value(record)
    metric_label = _METRICS[metric_of(record)][0]
    width, height = size
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    x_max = max(float(s.epochs.max()) for s in all_stages if s.epochs.size)
    axes = Axes(
        left=70,
        top=40,
        right=width - 20,
        bottom=height - 55,
        x_range=(0.0, 1.02 * x_max),
        y_range=value_range(all_stages, paper),
    )
    for tick in _ticks(*axes.y_range):
        _, row = axes.to_pixel(0.0, tick)
        draw.line([(axes.left, row), (axes.right, row)], _GRID_COLOUR)
        draw.text((axes.left - 6, row), _label(tick), (0, 0, 0), small, "rm")
    for tick in _ticks(*axes.x_range):
        column, _ = axes.to_pixel(tick, axes.y_range[0])
        draw.line([(column, axes.top), (column, axes.bottom)], _GRID_COLOUR)
        draw.text(
            (column, axes.bottom + 4), _label(tick), (0, 0, 0), small, "mt"
        )
    draw.rectangle(
        [axes.left, axes.top, axes.right, axes.bottom], None, "black"
    )
    draw.text(
        ((axes.left + axes.right) / 2, height - 8),
        "epochs",
        "black",
        font,
        "ms",
    )
    draw.text(
        (axes.left, 8),
        f"{record.get('name', '')}: {metric_label}",
        "black",
        font,
        "la",
    )
    if paper is not None:
        _, row = axes.to_pixel(0.0, paper)
        for start in range(axes.left, axes.right, 12):
            draw.line(
                [(start, row), (min(start + 6, axes.right), row)],
                _PAPER_COLOUR,
                2,
            )
        draw.text(
            (axes.right - 4, row - 3),
            f"paper {_label(paper)}",
            _PAPER_COLOUR,
            small,
            "rb",
        )
    # The curves are drawn on a layer that only the plot area shows, so
    # that a segment leaving the range is cut at the frame.
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    curves = ImageDraw.Draw(layer)
    legend_row = axes.top + 8
    for index, stage in enumerate(all_stages):
        colour = _STAGE_COLOURS[index % len(_STAGE_COLOURS)]
        points = [
            axes.to_pixel(x, y)
            for x, y in zip(stage.epochs, stage.values, strict=True)
        ]
        if len(points) > 1:
            curves.line(points, colour, 2)
        for column, row in points[-1:]:
            curves.ellipse([column - 3, row - 3, column + 3, row + 3], colour)
        draw.text(
            (axes.right - 8, legend_row), stage.describe(), colour, small, "ra"
        )
        legend_row += 16
    box = (axes.left + 1, axes.top + 1, axes.right, axes.bottom)
    visible = layer.crop(box)
    image.paste(visible, box[:2], visible)
    return image, axes
