"""Pictures: sample grids and the canvas drawn step by step (PNG and GIF).

The paper's signature figure shows the canvas after each step, with the
attention window drawn as a box. A window (see
`draw_tf.attention.WINDOW_PARAMETER_NAMES`) covers N x delta pixels
around its centre (g_X, g_Y), whose 1-based pixel coordinates put pixel a
over [a - 1, a] on the picture. Read windows are red, write windows green.
"""

import os

import numpy as np
from PIL import Image, ImageDraw

READ_COLOUR = (230, 40, 40)
WRITE_COLOUR = (40, 200, 60)
_BORDER = 1


def to_rgb_uint8(images: np.ndarray) -> np.ndarray:
    """[..., height, width, 1 or 3] in [0, 1] -> uint8 RGB."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return (255 * images + 0.5).astype(np.uint8)


def grid(images: np.ndarray, columns: int, scale: int = 2) -> Image.Image:
    """Tiles [n, height, width, channels] images in [0, 1] into one image."""
    images = to_rgb_uint8(images)
    _, height, width, _ = images.shape
    tiles = [
        Image.fromarray(image).resize(
            (width * scale, height * scale), Image.NEAREST
        )
        for image in images
    ]
    return tile_grid(tiles, columns)


def window_box(window, grid_size: int, scale: int):
    """(left, top, right, bottom) picture coordinates of a window's box."""
    center_x, center_y, _, stride, _ = (float(value) for value in window)
    half = grid_size * stride / 2.0
    # Pixel a spans [a - 1, a]: its centre is at a - 0.5.
    return (
        (center_x - 0.5 - half) * scale,
        (center_y - 0.5 - half) * scale,
        (center_x - 0.5 + half) * scale,
        (center_y - 0.5 + half) * scale,
    )


def annotated_tiles(
    canvases: np.ndarray,
    read_windows=None,
    write_windows=None,
    read_size: int | None = None,
    write_size: int | None = None,
    scale: int = 3,
) -> list[list[Image.Image]]:
    """Every canvas as a scaled tile with its attention boxes.

    Args:
      canvases: [batch, T, height, width, channels] in [0, 1].
      read_windows: optional [batch, T, 5].
      write_windows: optional [batch, T, 5].
      read_size: N of the read (needed with read_windows).
      write_size: N of the write (needed with write_windows).
      scale: pixels per image pixel.

    Returns:
      tiles[example][step], PIL images.
    """
    batch, steps, height, width, _ = canvases.shape
    rgb = to_rgb_uint8(canvases)
    tiles = []
    for example in range(batch):
        row = []
        for step in range(steps):
            tile = Image.fromarray(rgb[example, step]).resize(
                (width * scale, height * scale), Image.NEAREST
            )
            draw = ImageDraw.Draw(tile)
            for windows, size, colour in (
                (read_windows, read_size, READ_COLOUR),
                (write_windows, write_size, WRITE_COLOUR),
            ):
                if windows is None:
                    continue
                x0, y0, x1, y1 = window_box(windows[example, step], size, scale)
                box = (
                    max(x0, 0.0),
                    max(y0, 0.0),
                    min(x1, width * scale - 1.0),
                    min(y1, height * scale - 1.0),
                )
                if box[0] < box[2] and box[1] < box[3]:
                    draw.rectangle(box, outline=colour)
            row.append(tile)
        tiles.append(row)
    return tiles


def tile_grid(tiles: list[Image.Image], columns: int) -> Image.Image:
    """Lays equal-sized tiles out in rows of `columns`, with borders."""
    width, height = tiles[0].size
    rows = -(-len(tiles) // columns)
    picture = Image.new(
        "RGB",
        (
            columns * (width + _BORDER) + _BORDER,
            rows * (height + _BORDER) + _BORDER,
        ),
        (90, 90, 90),
    )
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        picture.paste(
            tile,
            (
                _BORDER + column * (width + _BORDER),
                _BORDER + row * (height + _BORDER),
            ),
        )
    return picture


def sequence_strip(
    tiles: list[list[Image.Image]], max_columns: int = 16
) -> Image.Image:
    """One row per example, one column per step: the paper's figure.

    At most `max_columns` steps are shown, evenly spaced, the last always.
    """
    steps = len(tiles[0])
    chosen = np.unique(
        np.linspace(0, steps - 1, min(steps, max_columns)).round().astype(int)
    )
    return tile_grid(
        [row[step] for row in tiles for step in chosen], columns=len(chosen)
    )


def animation_frames(
    tiles: list[list[Image.Image]], columns: int = 4
) -> list[Image.Image]:
    """One grid of all examples per step, for an animated GIF."""
    steps = len(tiles[0])
    return [
        tile_grid([row[step] for row in tiles], columns)
        for step in range(steps)
    ]


def save_gif(frames: list[Image.Image], path: str, total_seconds=4.0) -> str:
    """Writes an animated GIF of the frames, holding the last one."""
    duration = max(20, int(1000 * total_seconds / len(frames)))
    durations = [duration] * (len(frames) - 1) + [1500]
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
    )
    return path


def save_png(picture: Image.Image, path: str) -> str:
    """Writes a PNG, creating its directory."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    picture.save(path)
    return path


def save_run_pictures(
    generated: dict,
    reconstructed: dict,
    directory: str,
    read_size: int | None,
    write_size: int | None,
) -> dict:
    """The pictures of a run: samples, and drawing and redrawing, step by step.

    Args:
      generated: NumPy outputs of `DrawModel.generate`: images [n, H, W, C],
        canvases [n, T, H, W, C], and write_windows [n, T, 5] with write
        attention.
      reconstructed: NumPy outputs of `DrawModel.__call__` on test images
        with `return_canvases=True` (canvases, and read_windows and
        write_windows with attention).
      directory: where to write samples.png, generation.{png,gif} and
        reconstruction.{png,gif}.
      read_size: N of the read, None without read attention.
      write_size: N of the write, None without write attention.

    Returns:
      {name: path} of the files written.
    """
    paths = {
        "samples": save_png(
            grid(generated["images"], columns=8),
            os.path.join(directory, "samples.png"),
        )
    }
    shown = min(len(generated["images"]), 8)

    def first(outputs, key):
        value = outputs.get(key)
        return None if value is None else value[:shown]

    tiles = annotated_tiles(
        generated["canvases"][:shown],
        write_windows=first(generated, "write_windows"),
        write_size=write_size,
    )
    paths.update(save_sequence(tiles, directory, "generation"))
    tiles = annotated_tiles(
        reconstructed["canvases"][:shown],
        read_windows=first(reconstructed, "read_windows"),
        write_windows=first(reconstructed, "write_windows"),
        read_size=read_size,
        write_size=write_size,
    )
    paths.update(save_sequence(tiles, directory, "reconstruction"))
    return paths


def save_sequence(tiles: list[Image.Image], directory: str, name: str) -> dict:
    """Writes `<name>.png` (a strip) and `<name>.gif`; returns their paths."""
    strip_path = save_png(
        sequence_strip(tiles), os.path.join(directory, f"{name}.png")
    )
    gif_path = save_gif(
        animation_frames(tiles), os.path.join(directory, f"{name}.gif")
    )
    return {f"{name}_png": strip_path, f"{name}_gif": gif_path}


def save_episode_pictures(
    drawn: dict,
    directory: str,
    write_size: int | None,
    shown: int = 1,
    columns: int | None = None,
) -> dict:
    """The pictures of instructed episodes: turn by turn, and step by step.

    Args:
      drawn: NumPy outputs of `ConditionalDrawModel.generate`: images [n,
        turns, H, W, C], canvases [n, turns, T, H, W, C] and, with write
        attention, write_windows [n, turns, T, 5].
      directory: where to write episodes.png (a row per episode, a column
        per turn) and episode.{png,gif} (the first `shown` episodes drawn
        step by step through all their turns, with the write windows).
      write_size: N of the write, None without write attention.
      shown: episodes drawn step by step.
      columns: the columns of episodes.png; None for a row per episode, a
        column per turn.

    Returns:
      {name: path} of the files written.
    """
    images = drawn["images"]
    count, turns = images.shape[:2]
    paths = {
        "episodes": save_png(
            grid(
                images.reshape(-1, *images.shape[2:]), columns=columns or turns
            ),
            os.path.join(directory, "episodes.png"),
        )
    }
    canvases = drawn["canvases"][:shown]
    steps = canvases.shape[1] * canvases.shape[2]
    windows = drawn.get("write_windows")
    tiles = annotated_tiles(
        canvases.reshape(len(canvases), steps, *canvases.shape[3:]),
        write_windows=None
        if windows is None
        else windows[:shown].reshape(len(canvases), steps, 5),
        write_size=write_size,
    )
    paths.update(save_sequence(tiles, directory, "episode"))
    return paths
