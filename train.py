"""Trains, evaluates and draws DRAW models: `python train.py --flagfile=...`.

Flags only; the work is in `draw_tf.trainer`, the run loop, with one of
two engines: tf.distribute (`draw_tf.tensorflow.distributed_engine`), the
default when Keras runs on TensorFlow, or Keras `fit()`
(`draw_tf.keras_engine`), the default on another backend
(`KERAS_BACKEND=jax`, where TensorFlow need not be installed). A user
error (a bad flag, missing or corrupt data, a workdir of another
architecture) ends the run with one line on stderr and exit status 2.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags, logging  # noqa: E402

from draw_tf import backend, cli, errors  # noqa: E402
from draw_tf import config as config_lib  # noqa: E402

_DEFAULTS = config_lib.TrainConfig(workdir="")
FLAGS = flags.FLAGS

flags.DEFINE_string(
    "workdir",
    None,
    "Directory of the run: checkpoints, "
    "summaries, evaluation JSON and pictures. Required.",
)
flags.DEFINE_enum(
    "mode",
    _DEFAULTS.mode,
    config_lib.MODES,
    "train (then evaluate on test and draw), evaluate (test "
    "bounds from the workdir's best checkpoint) or draw "
    "(pictures from it).",
)
flags.DEFINE_enum(
    "task",
    _DEFAULTS.task,
    config_lib.TASKS,
    "generate: a DRAW generative model (negative ELBO). classify: DRAW's "
    "read attention as a classifier (paper Sec. 4.1): --num_steps "
    "glimpses of --read_glimpse_size, an LSTM of --encoder_units units. "
    "instruct: DRAW told what to draw, --num_steps steps per turn on one "
    "canvas (--dataset=instructed_mnist: --num_turns digits at the places "
    "asked; mnist or fashion_mnist: class-conditional, one turn).",
)
flags.DEFINE_enum(
    "dataset",
    _DEFAULTS.dataset,
    config_lib.DATASETS,
    "Dataset. With --data_dir, MNIST-format idx files are "
    "read from there (mnist, fashion_mnist); otherwise TFDS "
    "by this name (needs internet or a prepared "
    "--tfds_data_dir). synthetic: small generated images for "
    "smoke runs.",
)
flags.DEFINE_string(
    "data_dir",
    _DEFAULTS.data_dir,
    "Directory with train-images-idx3-ubyte[.gz] and "
    "t10k-images-idx3-ubyte[.gz] (offline data); empty to "
    "use TFDS.",
)
flags.DEFINE_string(
    "tfds_data_dir",
    _DEFAULTS.tfds_data_dir,
    "TFDS data directory; empty for TFDS's default.",
)
flags.DEFINE_enum(
    "binarization",
    _DEFAULTS.binarization,
    config_lib.BINARIZATIONS,
    "static: every image sampled once with a fixed seed "
    "(the paper's binarized MNIST); dynamic: training images "
    "resampled at every step, validation and test static; "
    "none: intensities in [0, 1] as Bernoulli targets.",
)
flags.DEFINE_bool(
    "resample_composites",
    _DEFAULTS.resample_composites,
    "two_digit_mnist / cluttered_mnist: compose every training "
    "batch afresh around its digits (new partners, positions "
    "and clutter at each step, seeded by the seed and the step) "
    "instead of one fixed set of training composites; "
    "validation and test stay fixed.",
)
flags.DEFINE_integer(
    "validation_size",
    _DEFAULTS.validation_size,
    "Images held out from the end of the training file "
    "for validation (model selection); 0 to n - 1 (0: train on all n, "
    "no validation, the last checkpoint is the model).",
)
flags.DEFINE_integer(
    "synthetic_image_size",
    _DEFAULTS.synthetic_image_size,
    "Height and width of --dataset=synthetic images; >= 1.",
)
flags.DEFINE_integer(
    "num_steps",
    _DEFAULTS.num_steps,
    "T, the number of DRAW steps (glimpses); >= 1.",
)
flags.DEFINE_integer(
    "encoder_units", _DEFAULTS.encoder_units, "Units of the encoder LSTM; >= 1."
)
flags.DEFINE_integer(
    "decoder_units", _DEFAULTS.decoder_units, "Units of the decoder LSTM; >= 1."
)
flags.DEFINE_integer(
    "latent_size",
    _DEFAULTS.latent_size,
    "|z|, the size of each step's latent; >= 1.",
)
flags.DEFINE_bool(
    "attention",
    _DEFAULTS.attention,
    "Selective attention for read and write; --noattention "
    "reads the whole image and writes the whole canvas.",
)
flags.DEFINE_integer(
    "read_glimpse_size",
    _DEFAULTS.read_glimpse_size,
    "N of the read glimpse (N x N); 1..max(height, width).",
)
flags.DEFINE_integer(
    "write_patch_size",
    _DEFAULTS.write_patch_size,
    "N of the write patch (N x N); 1..max(height, width).",
)
flags.DEFINE_integer(
    "batch_size",
    _DEFAULTS.batch_size,
    "Global batch size; >= 1, a multiple of the number of "
    "replicas, at most the training set size.",
)
flags.DEFINE_float(
    "learning_rate",
    _DEFAULTS.learning_rate,
    "Adam's (peak) learning rate; > 0.",
)
flags.DEFINE_enum(
    "learning_rate_schedule",
    _DEFAULTS.learning_rate_schedule,
    config_lib.LEARNING_RATE_SCHEDULES,
    "constant: --learning_rate throughout; cosine: decays from "
    "--learning_rate to --learning_rate_final_fraction of it over the "
    "run's steps (--num_epochs or --train_steps). Both after the warmup. "
    "A function of the step alone, so a resumed run takes the same rates.",
)
flags.DEFINE_integer(
    "learning_rate_warmup_steps",
    _DEFAULTS.learning_rate_warmup_steps,
    "Steps of linear warmup to --learning_rate; >= 0, below the run's "
    "steps for a cosine.",
)
flags.DEFINE_float(
    "learning_rate_final_fraction",
    _DEFAULTS.learning_rate_final_fraction,
    "The cosine's final rate as a fraction of --learning_rate; in [0, 1].",
)
flags.DEFINE_float(
    "gradient_clip_norm",
    _DEFAULTS.gradient_clip_norm,
    "Clip the global gradient norm to this; 0 for no "
    "clipping (the paper does not say).",
)
flags.DEFINE_bool(
    "jit_compile",
    _DEFAULTS.jit_compile,
    "Compile each replica's forward and backward pass with XLA (the DRAW "
    "task; bench/ measured it about 1.4x faster on CPU), and the "
    "evaluation's forward passes (2x); --nojit_compile runs them op by "
    "op. Same numbers within float tolerance.",
)
flags.DEFINE_enum(
    "precision",
    _DEFAULTS.precision,
    config_lib.PRECISIONS,
    "fp32, or bf16: the LSTM and posterior matmuls in bfloat16 (Keras' "
    "mixed_bfloat16 policy), weights, attention, canvas and loss in "
    "float32. Fast where the CPU has AVX-512-BF16 (or on a GPU); "
    "emulated, slower, elsewhere. The checkpoints are the same either way.",
)
flags.DEFINE_integer(
    "num_epochs",
    _DEFAULTS.num_epochs,
    "Epochs to train, when --train_steps is 0; >= 0.",
)
flags.DEFINE_integer(
    "train_steps",
    _DEFAULTS.train_steps,
    "Global steps to train; 0 to use --num_epochs.",
)
flags.DEFINE_integer(
    "seed",
    _DEFAULTS.seed,
    "Seed of initialisation, data order, dynamic binarization and noise.",
)
flags.DEFINE_integer(
    "log_every_steps",
    _DEFAULTS.log_every_steps,
    "Steps between progress lines and summaries; >= 1.",
)
flags.DEFINE_integer(
    "checkpoint_every_steps",
    _DEFAULTS.checkpoint_every_steps,
    "Steps between checkpoints; >= 1.",
)
flags.DEFINE_integer(
    "eval_every_steps",
    _DEFAULTS.eval_every_steps,
    "Steps between validations; 0 for once per epoch.",
)
flags.DEFINE_integer(
    "eval_batch_size",
    _DEFAULTS.eval_batch_size,
    "Images per evaluation pass; >= 1.",
)
flags.DEFINE_integer(
    "max_eval_examples",
    _DEFAULTS.max_eval_examples,
    "Evaluate on the first this many images of a split; "
    "0 for all (the reported numbers use all).",
)
flags.DEFINE_integer(
    "importance_samples",
    _DEFAULTS.importance_samples,
    "k of the importance-weighted test bound; 0 skips it.",
)
flags.DEFINE_integer(
    "num_cpu_devices",
    _DEFAULTS.num_cpu_devices,
    "Split the CPU into this many logical devices, one "
    "replica each (0 or 1: one). Ignored under TF_CONFIG.",
)
flags.DEFINE_integer(
    "num_pictures",
    _DEFAULTS.num_pictures,
    "Samples in the pictures; 0 for no pictures.",
)
flags.DEFINE_string(
    "pretrained",
    _DEFAULTS.pretrained,
    "With --mode=evaluate or draw: use this shipped model (see "
    "draw_tf.pretrained.names()) instead of the workdir's checkpoints; its "
    "training flags are the defaults, flags given here override them.",
)
flags.DEFINE_string(
    "init_from",
    _DEFAULTS.init_from,
    "With --mode=train in a new workdir: start from these weights instead "
    "of a random init: a shipped model's name (draw_tf.pretrained.names()) "
    "or a workdir (its best checkpoint, else its latest). The optimizer "
    "and the step start afresh; the source is recorded in "
    "<workdir>/init_from.json. Ignored when the workdir has a checkpoint.",
)
flags.DEFINE_string(
    "train_only",
    _DEFAULTS.train_only,
    "With Keras fit(): train only the variables whose path below the model "
    "starts with one of these comma-separated prefixes (e.g. "
    '"place_embedding,initial_canvas", what --init_from of a '
    "class-conditional model leaves new); the others keep their values. "
    "Empty: train every variable.",
)
flags.DEFINE_integer(
    "num_turns",
    _DEFAULTS.num_turns,
    "--task=instruct: turns of an episode, 1-4 on instructed_mnist (one "
    "quadrant each); 1 for a class-conditional dataset.",
)
flags.DEFINE_integer(
    "condition_size",
    _DEFAULTS.condition_size,
    "--task=instruct: size of the instruction's embedding e (class plus "
    "place) fed to the encoder and the decoder at every step.",
)
flags.DEFINE_bool(
    "carry_states",
    _DEFAULTS.carry_states,
    "--task=instruct: carry the LSTM states from turn to turn (the canvas "
    "always carries over); false starts each turn's LSTMs from zero.",
)
flags.DEFINE_bool(
    "place_frames",
    _DEFAULTS.place_frames,
    "--task=instruct on instructed_mnist: place each turn's read and write "
    "windows in its instructed quadrant, from a learned initial canvas.",
)
flags.DEFINE_string(
    "instructions",
    _DEFAULTS.instructions,
    '--task=instruct, --mode=draw: what to draw, e.g. "7 top-left; 3 '
    'bottom-right" (one turn per \';\'), or "7, 3" for a class-conditional '
    "model; empty: the first test instructions.",
)
flags.DEFINE_string(
    "judge",
    _DEFAULTS.judge,
    "--task=instruct: the digit judge that reads drawn test episodes "
    "(instruction accuracy and preservation per turn): a shipped judge "
    "(export/ship_judge.py), a DigitJudge .weights.h5 file, or empty for "
    "none.",
)

flags.DEFINE_enum(
    "engine",
    _DEFAULTS.engine,
    config_lib.ENGINES,
    "distributed: tf.distribute (TensorFlow only; TensorFlow checkpoints); "
    "keras: Keras fit() on the backend Keras runs on (.keras checkpoints). "
    "Empty: distributed on TensorFlow, keras on another backend. A workdir "
    "resumes with the engine that wrote it.",
)


def _config_values() -> dict:
    """The TrainConfig fields from the flags (and a shipped model's)."""
    fields = config_lib.TrainConfig.__dataclass_fields__
    values = {
        field: FLAGS[field].value if FLAGS[field].value is not None else ""
        for field in fields
    }
    if FLAGS.pretrained:
        from draw_tf import pretrained

        try:
            shipped = pretrained.record(FLAGS.pretrained)["config"]
        except pretrained.UnknownModelError as error:
            raise config_lib.ConfigError(f"--pretrained: {error}") from None
        for field in fields:
            if field in shipped and not FLAGS[field].present:
                values[field] = shipped[field]
        values.update(
            workdir=FLAGS.workdir or "",
            mode=FLAGS.mode,
            pretrained=FLAGS.pretrained,
        )
    return values


def main(argv):
    """Builds the config from the flags and runs it."""
    logging.set_verbosity(logging.INFO)
    logging.info("Imports done; building the run.")
    try:
        config = config_lib.TrainConfig(**_config_values())
        config.validate()
        run(config)
    except config_lib.ConfigError as error:
        cli.fail("train.py", error)
    except errors.TrainingDivergedError as error:
        cli.fail("train.py", error, status=1)


def run(config):
    """The run loop (`draw_tf.trainer`) with the config's engine."""
    from draw_tf import trainer

    make_engine = trainer.default_engine(config)
    if backend.is_tensorflow():
        from draw_tf.tensorflow import distribution

        # Logical devices must exist before TensorFlow runs anything.
        if not os.environ.get("TF_CONFIG"):
            distribution.configure_cpu_devices(config.num_cpu_devices)
    else:
        from draw_tf import startup

        startup.keep_tensorflow_unimported()
    logging.info(
        "Keras backend %s: training with the %s engine.",
        backend.name(),
        make_engine.__name__,
    )
    trainer.run(config, make_engine)


if __name__ == "__main__":
    cli.run(main, "train.py")
