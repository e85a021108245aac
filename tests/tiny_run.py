"""The tiny configuration the training, export and serving tests share."""

from draw_tf import config as config_lib

# A DRAW model small enough to train in seconds on synthetic 8 x 8 images.
TINY_MODEL = dict(
    dataset="synthetic",
    synthetic_image_size=8,
    num_steps=3,
    encoder_units=8,
    decoder_units=8,
    latent_size=3,
    read_glimpse_size=2,
    write_patch_size=3,
    batch_size=16,
)


# A conditional DRAW (--task=instruct) small enough to train in seconds.
TINY_INSTRUCTED_MODEL = dict(
    task="instruct",
    num_steps=2,
    encoder_units=8,
    decoder_units=8,
    latent_size=3,
    condition_size=4,
    read_glimpse_size=2,
    write_patch_size=3,
)


def tiny_config(workdir, **overrides) -> config_lib.TrainConfig:
    """A validated TrainConfig of the tiny model; `overrides` win."""
    values = dict(
        TINY_MODEL,
        workdir=str(workdir),
        train_steps=6,
        eval_every_steps=100,
        log_every_steps=100,
        checkpoint_every_steps=100,
        num_pictures=0,
    )
    values.update(overrides)
    return config_lib.TrainConfig(**values).validate()


def tiny_flags() -> list[str]:
    """The tiny model as train.py flags."""
    return [f"--{name}={value}" for name, value in TINY_MODEL.items()]
