"""Running the DRAW cell over T steps: a symbolic loop, and fast generation.

`reference_unroll` and `reference_generate` are the plain formulation: the
cell called T times from Python, so the graph (and its gradient) holds T
copies of the step. They are what the fast paths are tested against.

`unroll` (what `DrawModel.call` uses) runs the same cell calls inside one
loop, a few steps per iteration. The graph holds those few steps, not T,
so a training step traces in seconds rather than tens of seconds at
T = 64, and it is small enough for XLA to compile in seconds, which is
what makes train.py's default (`--jit_compile`) about 1.4x faster on CPU
(bench/). On TensorFlow the loop is a `tf.while_loop` over TensorArrays
(`draw_tf.tensorflow.unrolling`); on the other backends it is
`keras.ops.scan` (`jax.lax.scan` on JAX).

`generate` (what `DrawModel.generate` uses) exploits what generation does
not have: an encoder. The decoder's inputs z_1..z_T are known in advance
and nothing in its recurrence depends on the canvas, so

  - the decoder LSTM runs alone over all T steps: one `BlockLSTMV2` kernel
    on TensorFlow, a `keras.ops.scan` of the LSTM cell elsewhere;
  - the T writes, which nothing downstream in the recurrence reads, run
    afterwards as one batch of T * batch; c_t is the cumulative sum of the
    updates (eq. 8).

That is a few dozen ops instead of T times a few dozen, which is what
latency at batch 1 is made of. tests/unrolling_test.py checks every path
against the plain formulation on the same weights and noise.
"""

from keras import ops

from draw_tf import backend
from draw_tf import cell as cell_lib

# Steps per loop iteration in `unroll`. On 2 CPU cores at the paper's
# MNIST config, TensorFlow op by op, 1, 2 and 4 steps ran within noise of
# each other and of the full Python unroll (260-290 examples/s); under XLA
# 1-8 steps ran at 380-410. More steps trace and compile longer (1 step:
# 1.7 s op by op, 4 s with XLA; 2 steps: 2.5 s and 5.5 s; the full
# unroll: 22 s op by op), so one step per iteration it is.
DEFAULT_STEPS_PER_ITERATION = 1


def unroll(
    cell,
    images,
    noise,
    return_canvases=False,
    steps_per_iteration=DEFAULT_STEPS_PER_ITERATION,
):
    """Runs the cell for T = noise.shape[1] steps in one loop.

    Each loop iteration runs `steps_per_iteration` steps of `cell` (on
    TensorFlow the largest divisor of T not above it; on JAX the scan's
    `unroll`). Same numbers as `reference_unroll`.

    Args:
      cell: a built `DrawCell`.
      images: [batch, height, width, channels] float32, x.
      noise: [batch, T, latent_size] eps_1..eps_T.
      return_canvases: also return c_1..c_T.
      steps_per_iteration: steps per loop iteration, >= 1; T or more
        unrolls fully in Python (no loop).

    Returns:
      (per-step outputs, final `DrawState`): the outputs are the cell's
      (latent, posterior_mean, posterior_log_stddev, read_window and
      write_window with attention, canvas with `return_canvases`), each
      stacked time-major, [T, batch, ...].
    """
    num_steps = noise.shape[1]
    if steps_per_iteration >= num_steps:
        return reference_unroll(cell, images, noise, return_canvases)
    keys = step_keys(cell, return_canvases)
    if backend.is_tensorflow():
        from draw_tf.tensorflow import unrolling as unrolling_tensorflow

        return unrolling_tensorflow.unroll(
            cell, images, noise, keys, steps_per_iteration
        )

    def step(state, step_noise):
        outputs, state = cell((images, step_noise), state)
        return cell_lib.DrawState(*state), {key: outputs[key] for key in keys}

    state, per_step = ops.scan(
        step,
        cell.get_initial_state(ops.shape(images)[0]),
        ops.transpose(noise, (1, 0, 2)),
        unroll=steps_per_iteration,
    )
    return per_step, state


def reference_unroll(cell, images, noise, return_canvases=False):
    """The plain formulation: the cell called T times from Python.

    Args and returns as `unroll`.
    """
    keys = step_keys(cell, return_canvases)
    state = cell.get_initial_state(ops.shape(images)[0])
    per_step = {key: [] for key in keys}
    for t in range(noise.shape[1]):
        outputs, state = cell((images, noise[:, t]), state)
        for key in keys:
            per_step[key].append(outputs[key])
    return {key: ops.stack(per_step[key]) for key in keys}, state


def generate(cell, noise):
    """The decoder alone from z_1..z_T (eqs. 7-8), fused as described above.

    Args:
      cell: a built `DrawCell`.
      noise: [batch, T, latent_size] float32 z_1..z_T.

    Returns:
      A dict of canvas [T, batch, H, W, C], c_1..c_T (logits);
      canvas_logits [batch, H, W, C], c_T; write_window [T, batch, 5] with
      write attention.
    """
    num_steps = noise.shape[1]
    if backend.is_tensorflow():
        from draw_tf.tensorflow import unrolling as unrolling_tensorflow

        hidden = unrolling_tensorflow.decoder_hidden_states(cell, noise)
    else:
        units = cell.decoder_units
        zeros = ops.zeros((ops.shape(noise)[0], units))

        def step(state, latent):
            hidden, state = cell.decoder_step(latent, state)
            return state, hidden

        _, hidden = ops.scan(
            step, [zeros, zeros], ops.transpose(noise, (1, 0, 2))
        )  # h^dec_1..h^dec_T, [T, batch, units]
    hidden = ops.reshape(hidden, (-1, cell.decoder_units))  # [T * batch, units]
    outputs = {}
    if cell.write_attention:
        update, window = cell.write_layer(hidden)
        outputs["write_window"] = ops.reshape(window, (num_steps, -1, 5))
    else:
        update = cell.write_layer(hidden)
    updates = ops.reshape(update, (num_steps, -1, *cell.image_shape))
    # eq. 8. Only what the caller fetches runs: a graph that needs c_T
    # alone prunes the cumulative sum.
    outputs["canvas"] = ops.cumsum(updates, axis=0)
    outputs["canvas_logits"] = ops.sum(updates, axis=0)
    return outputs


def reference_generate(cell, noise):
    """The plain formulation of generation: `generate_step` T times.

    Args and returns as `generate`.
    """
    state = cell.get_initial_state(ops.shape(noise)[0])
    canvases, windows = [], []
    for t in range(noise.shape[1]):
        outputs, state = cell.generate_step(noise[:, t], state)
        canvases.append(outputs["canvas"])
        if cell.write_attention:
            windows.append(outputs["write_window"])
    result = {"canvas": ops.stack(canvases), "canvas_logits": state.canvas}
    if windows:
        result["write_window"] = ops.stack(windows)
    return result


def step_keys(cell, return_canvases) -> list[str]:
    """The per-step outputs to keep."""
    keys = ["latent", "posterior_mean", "posterior_log_stddev"]
    if cell.read_attention:
        keys.append("read_window")
    if cell.write_attention:
        keys.append("write_window")
    if return_canvases:
        keys.append("canvas")
    return keys
