"""draw_tf: DRAW (Gregor et al., ICML 2015) in TensorFlow and Keras 3.

The model and its loss run on any Keras 3 backend (tested on TensorFlow
and JAX; `KERAS_BACKEND=jax` needs no TensorFlow installed), and so do the
run loop with its fit() engine (`draw_tf.trainer`, `draw_tf.keras_engine`)
and the bounds (`draw_tf.bounds`). The tf.distribute engine and what else
belongs to TensorFlow alone (`draw_tf.tensorflow`), the tf.data pipelines
and the SavedModel export need TensorFlow; see `draw_tf.backend`.

The public API, re-exported flat:

- `DrawModel`: the model unrolled over T steps, and generation.
- `DrawCell`, `DrawState`: one step of DRAW (eqs. 3-8).
- Attention layers (eqs. 17-29): `AttentiveRead`, `AttentiveWrite`,
  `FullImageRead`, `DenseWrite`, `AttentionWindowHead`, and the filterbank
  functions.
- `pretrained`: the models shipped with the package,
  `draw_tf.pretrained.load(name)`.
- Losses (eqs. 9-12): `negative_elbo`, `mean_negative_elbo`,
  `reconstruction_loss`, `latent_loss_per_step`.
"""

from draw_tf import startup

# `pip install draw_tf[jax]`: no TensorFlow, so JAX unless told otherwise.
startup.default_to_an_installed_backend()
# Keras imports TensorFlow when it is the backend: quietly, before anything.
startup.quiet_import("keras")

from draw_tf import pretrained
from draw_tf.attention import (
    WINDOW_PARAMETER_NAMES,
    AttentionWindowHead,
    AttentiveRead,
    AttentiveWrite,
    DenseWrite,
    FullImageRead,
    apply_read_filters,
    apply_write_filters,
    axis_filterbank,
    filterbanks,
)
from draw_tf.cell import DrawCell, DrawState
from draw_tf.losses import (
    latent_loss_per_step,
    mean_negative_elbo,
    negative_elbo,
    reconstruction_loss,
)
from draw_tf.model import DrawModel, standard_normal_noise

__all__ = [
    "WINDOW_PARAMETER_NAMES",
    "AttentionWindowHead",
    "AttentiveRead",
    "AttentiveWrite",
    "DenseWrite",
    "DrawCell",
    "DrawModel",
    "DrawState",
    "FullImageRead",
    "apply_read_filters",
    "apply_write_filters",
    "axis_filterbank",
    "filterbanks",
    "latent_loss_per_step",
    "mean_negative_elbo",
    "negative_elbo",
    "pretrained",
    "reconstruction_loss",
    "standard_normal_noise",
]
