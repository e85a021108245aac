"""Exports a trained DRAW model as a SavedModel for TensorFlow Serving.

The export is written to `<export_base>/<model_name>/<version>/`
(saved_model.pb, variables/, assets.extra/), the layout
`tensorflow_model_server --model_base_path=<export_base>/<model_name>`
reads. It is first written to a hidden directory beside it and renamed
into place, so a server watching the base path never sees a half-written
version.

Signatures (method `tensorflow/serving/predict`, batch dimension -1):

  generate, serving_default:
      seeds int64 [batch] -> images float32 [batch, H, W, C]
  generate_from_noise:
      noise float32 [batch, T, z] -> images float32 [batch, H, W, C]
  canvas_sequence:
      seeds int64 [batch] -> canvases float32 [batch, T, H, W, C],
                             write_windows float32 [batch, T, 5]
                             (with write attention)
  reconstruct:
      images float32 [batch, H, W, C] in [0, 1], seeds int64 [batch]
      -> reconstructions float32 [batch, H, W, C],
         nll_bound float32 [batch] (negative ELBO, nats per image)

An instructed model (--task=instruct, `ConditionalDrawModel`) has the
signatures of `export.instructed_serving` instead: draw_instructions
(classes, places, seeds -> the canvas after every turn) and, without
places, a class-conditional generate (classes, seeds -> images).

Images are Bernoulli means, sigmoid(c_T). A seed fixes the noise of one
image, z_1..z_T = stateless_normal([T, z], seed=[seed, 0]): the same seed
gives the same image on every call (bit for bit) and in every batch
position (to float rounding, ~1e-7: on AVX-512 CPUs the matrix kernels
round a row by its position in the batch), with no random state in the
served graph. `assets.extra/tf_serving_warmup_requests`
holds one request per signature, which the server runs before it reports
the model available.
"""

import json
import os
import shutil
import time

import numpy as np
import tensorflow as tf

import draw_tf
from draw_tf import losses, models
from draw_tf import workdir as workdir_layout
from draw_tf.conditional_model import ConditionalDrawModel
from draw_tf.config import ConfigError, make_writable_directory
from export import instructed_serving

SIGNATURES = (
    "generate",
    "serving_default",
    "generate_from_noise",
    "canvas_sequence",
    "reconstruct",
)
WARMUP_FILE = "tf_serving_warmup_requests"
_NOISE_STREAM = 0
# Requests above this batch are refused, by default: a server must not be
# asked for gigabytes by one request (export --max_batch_size).
DEFAULT_MAX_BATCH_SIZE = 1024
# z_t ~ N(0, I): |z| > 100 has probability ~1e-2000; such noise is a bad
# request, and far larger values overflow to NaN images.
MAX_ABS_NOISE = 100.0


class ExportError(ConfigError):
    """The workdir or checkpoint can't be exported: a one-line error."""


class DrawServingModule(tf.Module):
    """The serving functions of a DRAW model, with explicit signatures.

    Args:
      model: a `draw_tf.DrawModel` with its trained weights.
      max_batch_size: the largest batch a request may ask for; a larger
        one is refused (INVALID_ARGUMENT) before any work.
    """

    def __init__(
        self,
        model: draw_tf.DrawModel,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ):
        super().__init__(name="draw_serving")
        self.model = model
        self.max_batch_size = int(max_batch_size)
        # Track the tf.Variables under the Keras variables, so that the
        # functions' captured handles map to saved variables (what
        # keras.export.ExportArchive does). Without this, the TF1 loader
        # that TF Serving uses restores copies the functions never read.
        self.tf_variables = [variable.value for variable in model.variables]
        steps, latent_size = model.num_steps, model.latent_size
        seeds = tf.TensorSpec([None], tf.int64, name="seeds")
        images = tf.TensorSpec([None, *model.image_shape], tf.float32, "images")
        noise = tf.TensorSpec([None, steps, latent_size], tf.float32, "noise")
        self.generate = tf.function(self._generate, input_signature=[seeds])
        self.generate_from_noise = tf.function(
            self._generate_from_noise, input_signature=[noise]
        )
        self.canvas_sequence = tf.function(
            self._canvas_sequence, input_signature=[seeds]
        )
        self.reconstruct = tf.function(
            self._reconstruct, input_signature=[images, seeds]
        )

    def check_batch(self, tensor, name: str) -> tf.Tensor:
        """`tensor`, once an empty or too large batch has been refused.

        The work of the request depends on the check, so a request for a
        batch above `max_batch_size` allocates nothing.
        """
        batch = tf.shape(tensor)[0]
        checks = [
            tf.debugging.assert_greater(
                batch,
                0,
                message=f"{name}: the batch is empty; send at least one "
                "example",
            ),
            tf.debugging.assert_less_equal(
                batch,
                self.max_batch_size,
                message=f"{name}: the batch is above the maximum of "
                f"{self.max_batch_size} examples set at export "
                "(--max_batch_size); split the request",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(tensor)

    def noise_from_seeds(self, seeds) -> tf.Tensor:
        """[batch] int64 seeds -> [batch, T, z] noise, one seed per image."""
        seeds = self.check_batch(seeds, "seeds")
        steps, latent_size = self.model.num_steps, self.model.latent_size
        return tf.map_fn(
            lambda seed: tf.random.stateless_normal(
                [steps, latent_size],
                seed=tf.stack([seed, tf.constant(_NOISE_STREAM, tf.int64)]),
            ),
            seeds,
            fn_output_signature=tf.TensorSpec([steps, latent_size], tf.float32),
        )

    def _generate(self, seeds):
        return self._generate_from_noise(self.noise_from_seeds(seeds))

    def _generate_from_noise(self, noise):
        noise = self.check_batch(noise, "noise")
        noise = tf.debugging.assert_all_finite(
            noise, message="noise: every value must be finite (no NaN or inf)"
        )
        in_range = tf.debugging.assert_less_equal(
            tf.reduce_max(tf.abs(noise)),
            MAX_ABS_NOISE,
            message=f"noise: values must be in [-{MAX_ABS_NOISE:g}, "
            f"{MAX_ABS_NOISE:g}] (z_t ~ N(0, I))",
        )
        with tf.control_dependencies([in_range]):
            noise = tf.identity(noise)
        return {"images": self.model.generate(noise=noise)["images"]}

    def _canvas_sequence(self, seeds):
        outputs = self.model.generate(noise=self.noise_from_seeds(seeds))
        result = {"canvases": outputs["canvases"]}
        if "write_windows" in outputs:
            result["write_windows"] = outputs["write_windows"]
        return result

    def _reconstruct(self, images, seeds):
        images = self.check_batch(images, "images")
        images = tf.debugging.assert_all_finite(
            images, message="images: every value must be finite (no NaN or inf)"
        )
        tf.debugging.assert_equal(
            tf.shape(images)[0],
            tf.shape(seeds)[0],
            message="images and seeds must have the same batch size",
        )
        tf.debugging.assert_greater_equal(
            tf.reduce_min(images), 0.0, message="images must be in [0, 1]"
        )
        tf.debugging.assert_less_equal(
            tf.reduce_max(images), 1.0, message="images must be in [0, 1]"
        )
        outputs = self.model(images, noise=self.noise_from_seeds(seeds))
        return {
            "reconstructions": tf.sigmoid(outputs["canvas_logits"]),
            "nll_bound": losses.negative_elbo(images, outputs)["negative_elbo"],
        }

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        generate = self.generate.get_concrete_function()
        from_noise = self.generate_from_noise.get_concrete_function()
        return {
            "generate": generate,
            "serving_default": generate,
            "generate_from_noise": from_noise,
            "canvas_sequence": self.canvas_sequence.get_concrete_function(),
            "reconstruct": self.reconstruct.get_concrete_function(),
        }


def _assert_not_empty(tensor, name):
    tf.debugging.assert_greater(
        tf.shape(tensor)[0],
        0,
        message=f"{name}: the batch is empty; send at least one example",
    )


def read_architecture(workdir: str) -> dict:
    """The architecture recorded in `<workdir>/config.json`.

    Returns:
      Its "architecture" dict (with image_shape).

    Raises:
      ExportError: if the file is missing or unreadable.
    """
    path = workdir_layout.path(workdir, workdir_layout.CONFIG)
    try:
        with open(path) as file:
            architecture = json.load(file)["architecture"]
    except FileNotFoundError:
        raise ExportError(
            f"{path} not found: --workdir must be a training workdir."
        ) from None
    except (OSError, ValueError, KeyError) as error:
        raise ExportError(f"{path} is not a valid config: {error}") from None
    if architecture.get("task", "generate") not in ("generate", "instruct"):
        raise ExportError(
            f"--workdir={workdir} holds a --task={architecture['task']} "
            "model; the serving export is for DRAW generative models "
            "(--task=generate or instruct)."
        )
    return architecture


def find_checkpoint(workdir: str, checkpoint: str = "") -> str:
    """`checkpoint`, else the workdir's best, else its latest checkpoint.

    Raises:
      ExportError: if there is none.
    """
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + ".index"):
            raise ExportError(
                f"--checkpoint={checkpoint}: no such checkpoint (expected "
                "the prefix of a .index file, e.g. WORKDIR/best/ckpt-1000)."
            )
        return checkpoint
    # The best, else the latest; a TensorFlow checkpoint, or the weights
    # fit() wrote on another backend (`draw_tf.keras_engine`).
    weights = workdir_layout.find_weights(workdir)
    if weights:
        return weights.path
    raise ExportError(f"--workdir={workdir} has no checkpoint to export.")


def load_model(workdir: str, checkpoint: str = "") -> tuple:
    """Builds the workdir's model and restores a checkpoint into it.

    Returns:
      (model, checkpoint path, training step).

    Raises:
      ExportError: if the checkpoint does not match the architecture.
    """
    architecture = read_architecture(workdir)
    model = models.build_from_architecture(
        architecture, architecture["image_shape"]
    )
    path = find_checkpoint(workdir, checkpoint)
    if path.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except ValueError as error:
            first_line = str(error).strip().splitlines()[0][:300]
            raise ExportError(
                f"{path} does not match the model of "
                f"{os.path.join(workdir, 'config.json')}: {first_line}"
            ) from None
        with open(
            workdir_layout.path(workdir, workdir_layout.KERAS_BEST_STATE)
        ) as file:
            return model, path, int(json.load(file)["step"])
    step = tf.Variable(0, dtype=tf.int64)
    try:
        status = tf.train.Checkpoint(model=model, step=step).restore(path)
        status.assert_existing_objects_matched().expect_partial()
        # Every model variable must come from the checkpoint.
        reader = tf.train.load_checkpoint(path)
        saved_shapes = reader.get_variable_to_shape_map()
        if not saved_shapes:
            raise ValueError("empty checkpoint")
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0][:300]
        raise ExportError(
            f"Checkpoint {path} does not match the model of "
            f"{os.path.join(workdir, 'config.json')}: {first_line}"
        ) from None
    return model, path, int(step.numpy())


def load_pretrained(name: str) -> tuple:
    """A shipped model (`draw_tf.pretrained`), as `load_model` returns.

    Raises:
      ExportError: if the name is unknown or names a classifier.
    """
    from draw_tf import pretrained

    try:
        model = pretrained.load(name)
    except pretrained.UnknownModelError as error:
        raise ExportError(f"--pretrained: {error}") from None
    if not isinstance(model, draw_tf.DrawModel | ConditionalDrawModel):
        raise ExportError(
            f"--pretrained={name} is a {pretrained.task(name)} model; the "
            "serving export is for DRAW generative models."
        )
    return model, f"pretrained:{name}", int(pretrained.record(name)["steps"])


def export(
    workdir: str,
    export_base: str,
    model_name: str = "draw",
    version: int | None = None,
    checkpoint: str = "",
    pretrained_name: str = "",
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> str:
    """Exports a training workdir's model for TF Serving.

    Args:
      workdir: the training workdir (config.json and checkpoints).
      export_base: the directory holding one directory per model.
      model_name: the model's name, also its directory and the name the
        warmup requests use.
      version: the integer version; the current Unix time when None, so
        that a newer export is a higher version.
      checkpoint: a checkpoint prefix to export instead of the workdir's
        best (or latest) one.
      pretrained_name: export this shipped model (`draw_tf.pretrained`)
        instead of a workdir's.
      max_batch_size: the largest batch a request may ask for (>= 1).

    Returns:
      The version directory written.

    Raises:
      ExportError: on a bad workdir, checkpoint, name or version.
    """
    make_writable_directory("export_base", export_base)
    if not model_name or "/" in model_name or model_name in (".", ".."):
        raise ExportError(
            f"--model_name={model_name!r} must be a non-empty name without '/'."
        )
    version = int(time.time()) if version is None else version
    if version < 0:
        raise ExportError(f"--version must be >= 0; got {version}.")
    if max_batch_size < 1:
        raise ExportError(
            f"--max_batch_size must be >= 1; got {max_batch_size}."
        )
    if bool(workdir) == bool(pretrained_name):
        raise ExportError(
            "Give one of --workdir (a training workdir) or --pretrained (a "
            "shipped model's name)."
        )
    if pretrained_name:
        model, path, step = load_pretrained(pretrained_name)
    else:
        model, path, step = load_model(workdir, checkpoint)
    model_dir = os.path.join(export_base, model_name)
    final = os.path.join(model_dir, str(version))
    if tf.io.gfile.exists(final):
        raise ExportError(f"{final} exists already; choose another --version.")
    staging = os.path.join(model_dir, f".tmp-{version}")
    shutil.rmtree(staging, ignore_errors=True)
    make_writable_directory("export_base", model_dir)
    if isinstance(model, ConditionalDrawModel):
        module = instructed_serving.InstructedServingModule(
            model, max_batch_size
        )
        warmup = instructed_serving.warmup_inputs(
            model, min(WARMUP_BATCH_SIZE, max_batch_size)
        )
    else:
        module = DrawServingModule(model, max_batch_size)
        warmup = warmup_inputs(
            model.num_steps,
            model.latent_size,
            model.image_shape,
            min(WARMUP_BATCH_SIZE, max_batch_size),
        )
    tf.saved_model.save(module, staging, signatures=module.signatures())
    extra = os.path.join(staging, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    write_warmup_requests(os.path.join(extra, WARMUP_FILE), model_name, warmup)
    with open(os.path.join(extra, "export_info.json"), "w") as file:
        json.dump(
            {
                "checkpoint": path,
                "step": step,
                "model": model.get_config(),
                "max_batch_size": max_batch_size,
            },
            file,
            indent=2,
        )
    os.rename(staging, final)
    return final


# The batch of the warmup requests (at most the export's --max_batch_size,
# which would refuse a larger one and keep the server from loading it).
WARMUP_BATCH_SIZE = 2


def warmup_inputs(
    num_steps, latent_size, image_shape, batch_size=WARMUP_BATCH_SIZE
) -> dict:
    """One small, valid input dict per signature ([batch_size, ...])."""
    seeds = np.arange(batch_size, dtype=np.int64)
    return {
        "generate": {"seeds": seeds},
        "serving_default": {"seeds": seeds},
        "generate_from_noise": {
            "noise": np.zeros([batch_size, num_steps, latent_size], np.float32)
        },
        "canvas_sequence": {"seeds": seeds},
        "reconstruct": {
            "images": np.zeros([batch_size, *image_shape], np.float32),
            "seeds": seeds,
        },
    }


def write_warmup_requests(path, model_name, inputs_by_signature) -> None:
    """Writes a TFRecord of PredictionLog, one PredictRequest a signature.

    Args:
      path: the file.
      model_name: the served model's name.
      inputs_by_signature: {signature: {input name: array}}.
    """
    from tensorflow_serving.apis import (
        model_pb2,
        predict_pb2,
        prediction_log_pb2,
    )

    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in inputs_by_signature.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(
                    name=model_name, signature_name=signature
                )
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
