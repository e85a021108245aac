"""The configuration of a training run, and its validation.

`TrainConfig` holds every setting of `train.py`; its field names are the
flag names, so an error names the flag to fix. Libraries take a
`TrainConfig` and never read flags.
"""

import dataclasses
import json
import math
import os

from draw_tf import workdir as workdir_layout

DATASETS = (
    "mnist",
    "fashion_mnist",
    "binarized_mnist",
    "cifar10",
    "svhn_cropped",
    "two_digit_mnist",
    "cluttered_mnist",
    "instructed_mnist",
    "synthetic",
)
# Built from local MNIST idx files (--data_dir), see composite_mnist.py.
COMPOSITE_DATASETS = ("two_digit_mnist", "cluttered_mnist")
TASKS = ("generate", "classify", "instruct")
# --task=instruct: episodes of instructions on one canvas
# (draw_tf.instructed_mnist), or one turn of class-conditional digits.
INSTRUCTED_DATASET = "instructed_mnist"
CLASS_CONDITIONAL_DATASETS = ("mnist", "fashion_mnist")
MAX_TURNS = 4  # one quadrant each
BINARIZATIONS = ("static", "dynamic", "none")
MODES = ("train", "evaluate", "draw")
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")  # draw_tf.cell.PRECISIONS
# "" picks the backend's: tf.distribute on TensorFlow, fit() elsewhere.
ENGINES = ("", "distributed", "keras")

# The fields that fix the model's variables: a workdir's checkpoint can
# only be restored into a model with the same values.
ARCHITECTURE_FIELDS = (
    "task",
    "num_steps",
    "encoder_units",
    "decoder_units",
    "latent_size",
    "attention",
    "read_glimpse_size",
    "write_patch_size",
    "num_turns",
    "condition_size",
    "carry_states",
    "place_frames",
)
# Architecture fields of --task=instruct alone (place_frames only when
# true: the models before it have none).
INSTRUCT_FIELDS = (
    "num_turns",
    "condition_size",
    "carry_states",
    "place_frames",
)


_ADDED_FIELD_DEFAULTS = {"task": "generate"}


# Bounds past which a value is a mistake rather than a setting.
MAX_CPU_DEVICES = 64
MAX_IMAGE_SIZE = 1024


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo; 0 where it can't be read."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class ConfigError(ValueError):
    """A user-facing error in flags, files or a workdir: one line, no trace."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of a run; see train.py for each flag's help text."""

    workdir: str
    mode: str = "train"
    task: str = "generate"
    dataset: str = "mnist"
    data_dir: str = ""
    tfds_data_dir: str = ""
    binarization: str = "dynamic"
    resample_composites: bool = False
    validation_size: int = 10000
    synthetic_image_size: int = 12
    num_steps: int = 64
    encoder_units: int = 256
    decoder_units: int = 256
    latent_size: int = 100
    attention: bool = True
    read_glimpse_size: int = 2
    write_patch_size: int = 5
    batch_size: int = 100
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "constant"
    learning_rate_warmup_steps: int = 0
    learning_rate_final_fraction: float = 0.01
    gradient_clip_norm: float = 0.0
    jit_compile: bool = True
    precision: str = "fp32"
    num_epochs: int = 10
    train_steps: int = 0
    seed: int = 0
    log_every_steps: int = 100
    checkpoint_every_steps: int = 500
    eval_every_steps: int = 0
    eval_batch_size: int = 500
    max_eval_examples: int = 0
    importance_samples: int = 10
    num_cpu_devices: int = 0
    num_pictures: int = 16
    pretrained: str = ""
    init_from: str = ""
    train_only: str = ""
    engine: str = ""
    num_turns: int = 3
    condition_size: int = 32
    carry_states: bool = True
    place_frames: bool = False
    instructions: str = ""
    judge: str = "digit_judge"

    @property
    def num_places(self) -> int:
        """Places an instruction names: 4 quadrants, or 0 (class only)."""
        return 4 if self.dataset == INSTRUCTED_DATASET else 0

    @property
    def steps_per_example(self) -> int:
        """DRAW steps an example takes: T, or T per turn times the turns."""
        if self.task == "instruct":
            return self.num_steps * self.num_turns
        return self.num_steps

    def validate(self) -> "TrainConfig":
        """Checks every field; raises ConfigError naming the bad flag."""
        _check_choice("mode", self.mode, MODES)
        _check_choice("task", self.task, TASKS)
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("binarization", self.binarization, BINARIZATIONS)
        _check_choice(
            "learning_rate_schedule",
            self.learning_rate_schedule,
            LEARNING_RATE_SCHEDULES,
        )
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("engine", self.engine, ENGINES)
        if self.resample_composites:
            if self.dataset not in COMPOSITE_DATASETS:
                raise ConfigError(
                    "--resample_composites composes the training images of "
                    f"{' or '.join(COMPOSITE_DATASETS)} afresh at every "
                    f"step; --dataset={self.dataset} has no composites."
                )
            if self.binarization == "static":
                raise ConfigError(
                    "--resample_composites needs --binarization=dynamic or "
                    "none: a static binarization is of fixed images."
                )
        if self.precision != "fp32" and self.task != "generate":
            raise ConfigError(
                f"--precision={self.precision} is for the DRAW model "
                f"(--task=generate); --task={self.task} trains in fp32."
            )
        self._validate_instruct()
        if not self.workdir:
            raise ConfigError("--workdir is required: a directory to write to.")
        for name in (
            "num_steps",
            "encoder_units",
            "decoder_units",
            "latent_size",
            "batch_size",
            "log_every_steps",
            "checkpoint_every_steps",
            "eval_batch_size",
            "synthetic_image_size",
            "num_turns",
            "condition_size",
        ):
            _check_int(name, getattr(self, name), minimum=1)
        for name in (
            "validation_size",
            "train_steps",
            "eval_every_steps",
            "max_eval_examples",
            "importance_samples",
            "num_cpu_devices",
            "num_pictures",
            "num_epochs",
            "learning_rate_warmup_steps",
        ):
            _check_int(name, getattr(self, name), minimum=0)
        if self.attention or self.task == "classify":
            _check_int("read_glimpse_size", self.read_glimpse_size, 1)
        if self.attention and self.task != "classify":
            _check_int("write_patch_size", self.write_patch_size, 1)
        if self.task == "classify" and self.dataset in (
            "binarized_mnist",
            "two_digit_mnist",
        ):
            raise ConfigError(
                f"--task=classify needs labels; --dataset={self.dataset} "
                "has none (use cluttered_mnist, mnist, fashion_mnist, ...)."
            )
        if not 0 <= self.seed < 2**32:
            raise ConfigError(
                f"--seed must be an integer in [0, 2**32); got {self.seed}."
            )
        if self.num_cpu_devices > MAX_CPU_DEVICES:
            raise ConfigError(
                f"--num_cpu_devices must be at most {MAX_CPU_DEVICES} "
                f"logical devices; got {self.num_cpu_devices}."
            )
        if self.synthetic_image_size > MAX_IMAGE_SIZE:
            raise ConfigError(
                f"--synthetic_image_size must be at most {MAX_IMAGE_SIZE}; "
                f"got {self.synthetic_image_size}."
            )
        for name in (
            "learning_rate",
            "gradient_clip_norm",
            "learning_rate_final_fraction",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ConfigError(
                    f"--{name} must be a finite number; got {value!r}."
                )
        if not self.learning_rate > 0:
            raise ConfigError(
                f"--learning_rate must be > 0; got {self.learning_rate}."
            )
        if not 0 <= self.learning_rate_final_fraction <= 1:
            raise ConfigError(
                "--learning_rate_final_fraction must be in [0, 1] (the "
                "cosine's final rate over --learning_rate); got "
                f"{self.learning_rate_final_fraction}."
            )
        if not self.gradient_clip_norm >= 0:
            raise ConfigError(
                "--gradient_clip_norm must be >= 0 (0 turns clipping off); "
                f"got {self.gradient_clip_norm}."
            )
        if self.pretrained and self.mode == "train":
            raise ConfigError(
                f"--pretrained={self.pretrained} evaluates or draws a shipped "
                "model; add --mode=evaluate or --mode=draw."
            )
        if self.init_from and self.mode != "train":
            raise ConfigError(
                f"--init_from={self.init_from} starts training from other "
                "weights; it needs --mode=train."
            )
        if self.mode == "train" and self.num_epochs == 0 == self.train_steps:
            raise ConfigError(
                "One of --num_epochs or --train_steps must be positive."
            )
        return self

    def _validate_instruct(self) -> None:
        """The checks of --task=instruct and of its flags elsewhere."""
        if self.task != "instruct":
            if self.dataset == INSTRUCTED_DATASET:
                raise ConfigError(
                    f"--dataset={INSTRUCTED_DATASET} is of instructed "
                    "episodes: it needs --task=instruct."
                )
            if self.instructions:
                raise ConfigError(
                    "--instructions are drawn by an instructed model "
                    f"(--task=instruct); this run has --task={self.task}."
                )
            if self.place_frames:
                raise ConfigError(
                    "--place_frames is of an instructed model "
                    f"(--task=instruct); this run has --task={self.task}."
                )
            return
        if self.validation_size == 0:
            raise ConfigError(
                "--validation_size=0 leaves no validation episodes, which "
                "--task=instruct judges at every validation; expected >= 1."
            )
        allowed = (INSTRUCTED_DATASET, *CLASS_CONDITIONAL_DATASETS)
        if self.dataset not in allowed:
            raise ConfigError(
                f"--task=instruct draws {INSTRUCTED_DATASET} episodes or "
                f"class-conditional {' or '.join(CLASS_CONDITIONAL_DATASETS)}"
                f" digits; got --dataset={self.dataset}."
            )
        if self.dataset == INSTRUCTED_DATASET:
            if not 1 <= self.num_turns <= MAX_TURNS:
                raise ConfigError(
                    f"--num_turns must be 1-{MAX_TURNS} (one quadrant each) "
                    f"for --dataset={INSTRUCTED_DATASET}; got {self.num_turns}."
                )
            if self.binarization == "static":
                raise ConfigError(
                    f"--dataset={INSTRUCTED_DATASET} composes new training "
                    "episodes at every step: use --binarization=dynamic or "
                    "none."
                )
        elif self.num_turns != 1:
            raise ConfigError(
                f"--dataset={self.dataset} is class-conditional, one digit "
                f"per example: --num_turns must be 1; got {self.num_turns}."
            )
        if self.place_frames and (
            self.dataset != INSTRUCTED_DATASET or not self.attention
        ):
            raise ConfigError(
                "--place_frames places the attention windows in the "
                f"instructed quadrant: it needs --dataset={INSTRUCTED_DATASET} "
                f"and --attention; got --dataset={self.dataset}"
                f"{'' if self.attention else ' and --noattention'}."
            )
        if self.engine == "distributed":
            raise ConfigError(
                "--task=instruct trains with Keras fit() (--engine=keras), on "
                "TensorFlow or JAX; --engine=distributed is for the "
                "unconditional model and the classifier."
            )
        if self.instructions and self.mode != "draw":
            raise ConfigError(
                f"--instructions are drawn with --mode=draw; got "
                f"--mode={self.mode}."
            )
        if self.judge and not self.judge.endswith(".weights.h5"):
            from draw_tf import pretrained  # imports this module

            judges = pretrained.names_of_task("judge")
            if self.judge not in judges:
                raise ConfigError(
                    f"--judge={self.judge}: expected a shipped judge "
                    f"({', '.join(judges) or 'none shipped'}), a DigitJudge "
                    ".weights.h5 file, or empty for none."
                )
        elif self.judge and not os.path.isfile(self.judge):
            raise ConfigError(
                f"--judge={self.judge}: no such file; expected a DigitJudge "
                ".weights.h5 file, a shipped judge's name, or empty."
            )

    def check_image_shape(self, image_shape) -> None:
        """Checks the attention sizes against the data's image shape."""
        height, width, _ = image_shape
        if self.task == "classify":
            names = ("read_glimpse_size",)
        elif self.attention:
            names = ("read_glimpse_size", "write_patch_size")
        else:
            return
        for name in names:
            value = getattr(self, name)
            if value > max(height, width):
                raise ConfigError(
                    f"--{name}={value} is larger than the images "
                    f"({height} x {width}); expected 1..{max(height, width)}."
                )

    def estimated_memory_bytes(self, image_shape) -> int:
        """A rough upper estimate of the memory a run of this config needs.

        Parameters with gradients and Adam's two moments, the activations
        a training step keeps for its backward pass (T steps of LSTM
        gates, latents, canvases and glimpses per example), and the
        largest evaluation pass; float32. Used to refuse sizes that cannot
        fit before anything is allocated.
        """
        height, width, channels = (int(size) for size in image_shape)
        pixels = height * width * channels
        steps = self.steps_per_example
        if self.task == "classify":
            units, glimpse = self.encoder_units, self.read_glimpse_size**2
            parameters = 4 * units * (glimpse * channels + units + 1)
            parameters += 15 * units
            per_step = 6 * units + glimpse * channels + height + width
        else:
            encoder, decoder, latent = (
                self.encoder_units,
                self.decoder_units,
                self.latent_size,
            )
            if self.attention:
                read = 2 * self.read_glimpse_size**2 * channels
                write = self.write_patch_size**2 * channels
            else:
                read, write = 2 * pixels, pixels
            parameters = (
                4 * encoder * (read + decoder + encoder + 1)
                + 2 * encoder * latent
                + 4 * decoder * (latent + decoder + 1)
                + decoder * write
                + 10 * decoder
            )
            if self.task == "instruct":
                parameters += 4 * (encoder + decoder + 4) * self.condition_size
            per_step = (
                6 * (encoder + decoder) + 3 * latent + 4 * pixels + read + write
            )
        training = self.batch_size * steps * per_step * 2
        evaluation = max(self.eval_batch_size, self.importance_samples)
        evaluation *= steps * per_step
        images = 2 * pixels * max(self.batch_size, self.eval_batch_size)
        return 4 * (4 * parameters + max(training, evaluation) + images)

    def check_fits_in_memory(self, image_shape) -> None:
        """Raises ConfigError if the run cannot fit in this machine's memory."""
        needed = self.estimated_memory_bytes(image_shape)
        available = available_memory_bytes()
        if available and needed > available:
            raise ConfigError(
                f"This model needs about {needed / 2**30:.1f} GiB "
                f"(--num_steps={self.num_steps}, units "
                f"{self.encoder_units}/{self.decoder_units}, "
                f"--latent_size={self.latent_size}, --batch_size="
                f"{self.batch_size}, --eval_batch_size="
                f"{self.eval_batch_size}, --importance_samples="
                f"{self.importance_samples}) but this machine has "
                f"{available / 2**30:.1f} GiB available; use smaller sizes."
            )

    def model_kwargs(self, image_shape) -> dict:
        """Arguments of the task's model (`draw_tf.models`)."""
        if self.task == "classify":
            return dict(
                image_shape=tuple(int(size) for size in image_shape),
                num_glimpses=self.num_steps,
                glimpse_size=self.read_glimpse_size,
                units=self.encoder_units,
            )
        draw = dict(
            image_shape=tuple(int(size) for size in image_shape),
            encoder_units=self.encoder_units,
            decoder_units=self.decoder_units,
            latent_size=self.latent_size,
            read_glimpse_size=self.read_glimpse_size
            if self.attention
            else None,
            write_patch_size=self.write_patch_size if self.attention else None,
            seed=self.seed,
        )
        if self.task == "instruct":
            return dict(
                draw,
                num_turns=self.num_turns,
                num_places=self.num_places,
                steps_per_turn=self.num_steps,
                condition_size=self.condition_size,
                carry_states=self.carry_states,
                place_frames=self.place_frames,
            )
        return dict(draw, num_steps=self.num_steps, precision=self.precision)

    def architecture(self) -> dict:
        """The fields that decide the model's variables."""
        values = {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}
        if self.task == "instruct":
            values["dataset"] = self.dataset  # its places, and classes
            if not self.place_frames:
                del values["place_frames"]
        else:
            for name in INSTRUCT_FIELDS:
                del values[name]
        if self.task == "classify":
            for name in ("decoder_units", "latent_size", "attention"):
                del values[name]
            del values["write_patch_size"]
        elif not self.attention:
            del values["read_glimpse_size"], values["write_patch_size"]
        return values

    @classmethod
    def from_dict(cls, values: dict, **overrides) -> "TrainConfig":
        """The config of a saved dict (config.json, a record), not validated.

        Keys that are not fields (a record written by another version) are
        left out; fields it lacks take their defaults; `overrides` win.
        """
        fields = cls.__dataclass_fields__
        values = dict(values, **overrides)
        return cls(
            **{key: value for key, value in values.items() if key in fields}
        )

    def to_json(self) -> str:
        """The config as JSON."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def check_workdir_architecture(
    config: TrainConfig, image_shape, flag: str = "workdir"
) -> None:
    """Writes or compares `<workdir>/config.json`.

    A new workdir gets the config. A workdir that has one must hold a model
    of the same architecture and image shape, or its checkpoints could not
    be restored.

    Raises:
      ConfigError: if the workdir holds another architecture.
    """
    path = os.path.join(config.workdir, workdir_layout.CONFIG)
    current = dict(config.architecture(), image_shape=list(image_shape))
    if os.path.exists(path):
        try:
            with open(path) as file:
                saved = json.load(file)
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path} is not readable JSON: {error}") from None
        # Fields added after a workdir was made take their old meaning.
        saved_architecture = dict(_ADDED_FIELD_DEFAULTS)
        saved_architecture.update(saved.get("architecture", {}))
        differences = [
            f"{key}={saved_architecture.get(key)!r} there, {value!r} asked"
            for key, value in current.items()
            if saved_architecture.get(key) != value
        ]
        if differences:
            raise ConfigError(
                f"--{flag}={config.workdir} holds a model of another "
                f"architecture ({'; '.join(differences)}); use a new workdir "
                "or the same model flags."
            )
        trained_with = saved.get("config", {}).get("validation_size")
        if (
            config.mode == "train"
            and trained_with is not None
            and trained_with != config.validation_size
        ):
            # Its training images and its best checkpoint are of that split.
            raise ConfigError(
                f"--validation_size={config.validation_size}: --{flag}="
                f"{config.workdir} was trained with --validation_size="
                f"{trained_with}; resume with that or use a new workdir."
            )
        return
    make_writable_directory("workdir", config.workdir)
    try:
        with open(path, "w") as file:
            json.dump(
                {"architecture": current, "config": dataclasses.asdict(config)},
                file,
                indent=2,
                sort_keys=True,
            )
    except OSError as error:
        raise ConfigError(
            f"--workdir={config.workdir} cannot be written "
            f"({error.strerror or error}); expected a writable directory."
        ) from None


def make_writable_directory(flag: str, path: str) -> None:
    """Creates directory `path` if needed; ConfigError naming --flag if not.

    Raises:
      ConfigError: if `path` is empty, a file, or cannot be created.
    """
    if not path:
        raise ConfigError(f"--{flag} is empty; expected a directory.")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--{flag}={path} is a file; expected a directory.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--{flag}={path} cannot be created "
            f"({error.strerror or error}); expected a writable directory."
        ) from None


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(
            f"--{name}={value!r} is not one of {', '.join(choices)}."
        )


def _check_int(name, value, minimum):
    if not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"--{name} must be an integer >= {minimum}; got {value!r}."
        )
