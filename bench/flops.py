"""Analytic FLOPs of a DRAW training step, from the layer shapes.

Only multiply-adds of matmuls are counted (2 FLOPs each); elementwise ops,
softmaxes and the optimizer are left out, so the count is a lower bound on
the work and the achieved rate is a fair, slightly conservative figure.

Per example and per step t, with E, D encoder/decoder units, Z = |z|,
image H x W x C, read N_r, write N_w (paper eqs. 3-8, 17-29):

  encoder LSTM      2 (R + D + E) 4E    R = 2 N_r^2 C (read) or 2 H W C
  posterior         2 E (2Z)            mu and log sigma
  decoder LSTM      2 (Z + D) 4D
  read window       2 D 5               with read attention
  read filters      2 N_r H W (2C) + 2 N_r (2C) W N_r
                                        F_Y x, then (F_Y x) F_X^T
  write             2 D N_w^2 C + 2 D 5 + 2 H N_w N_w C + 2 H C N_w W
                                        patch, window, F_Y^T w, (.) F_X
                    or 2 D H W C        without write attention

A forward pass is T times that. The backward pass of a matmul is two
matmuls of the same size (gradients for its input and its weight), so a
training step is 3 x forward.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DrawShape:
    """The sizes the FLOP count depends on (a `DrawModel`'s config)."""

    image_shape: tuple[int, int, int]
    num_steps: int = 64
    encoder_units: int = 256
    decoder_units: int = 256
    latent_size: int = 100
    read_glimpse_size: int | None = 2
    write_patch_size: int | None = 5


def forward_flops_per_step(shape: DrawShape) -> dict[str, int]:
    """Matmul FLOPs of one DRAW step for one example, by part."""
    height, width, channels = shape.image_shape
    encoder, decoder = shape.encoder_units, shape.decoder_units
    latent = shape.latent_size
    read_n, write_n = shape.read_glimpse_size, shape.write_patch_size
    parts = {}
    if read_n is None:
        read_size = 2 * height * width * channels
    else:
        read_size = 2 * read_n**2 * channels
        parts["read_window"] = 2 * decoder * 5
        parts["read_filters"] = (
            2 * read_n * height * width * 2 * channels
            + 2 * read_n * 2 * channels * width * read_n
        )
    parts["encoder_lstm"] = 2 * (read_size + decoder + encoder) * 4 * encoder
    parts["posterior"] = 2 * encoder * 2 * latent
    parts["decoder_lstm"] = 2 * (latent + decoder) * 4 * decoder
    if write_n is None:
        parts["write"] = 2 * decoder * height * width * channels
    else:
        parts["write"] = (
            2 * decoder * write_n**2 * channels
            + 2 * decoder * 5
            + 2 * height * write_n * write_n * channels
            + 2 * height * channels * write_n * width
        )
    return parts


def training_flops_per_example(shape: DrawShape) -> int:
    """3 x T x the per-step forward FLOPs (forward + backward)."""
    return 3 * shape.num_steps * sum(forward_flops_per_step(shape).values())
