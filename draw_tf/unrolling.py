"""Running the DRAW cell over T steps: a symbolic loop, and fast generation.

`reference_unroll` and `reference_generate` are the plain formulation: the
cell called T times from Python, so the graph (and its gradient) holds T
copies of the step. They are what the fast paths are tested against.

`unroll` (what `DrawModel.call` uses) runs the same cell calls inside one
`tf.while_loop`, a few steps per iteration. The graph holds those few
steps, not T, so a training step traces in seconds rather than tens of
seconds at T = 64, at about the same speed per step op by op; and it is
small enough for XLA to compile in seconds, which is what makes
train.py's default (`--jit_compile`) about 1.4x faster on CPU (bench/).

`generate` (what `DrawModel.generate` uses) exploits what generation does
not have: an encoder. The decoder's inputs z_1..z_T are known in advance
and nothing in its recurrence depends on the canvas, so

  - the decoder LSTM runs as one `BlockLSTMV2` op over all T steps (a
    TensorFlow core kernel; its gates are in Keras' i, f, c, o order, and
    its weight is [W; U] stacked, the input rows first);
  - the T writes, which nothing downstream in the recurrence reads, run
    afterwards as one batch of T * batch; c_t is the cumulative sum of the
    updates (eq. 8).

That is a few dozen ops instead of T times a few dozen, which is what
latency at batch 1 is made of. tests/unrolling_test.py checks every path
against the plain formulation on the same weights and noise.
"""

import tensorflow as tf

from draw_tf import cell as cell_lib

# Steps per tf.while_loop iteration in `unroll`. On 2 CPU cores at the
# paper's MNIST config, op by op, 1, 2 and 4 steps ran within noise of each
# other and of the full Python unroll (260-290 examples/s); under XLA 1-8
# steps ran at 380-410. More steps trace and compile longer (1 step: 1.7 s
# op by op, 4 s with XLA; 2 steps: 2.5 s and 5.5 s; the full unroll: 22 s
# op by op), so one step per iteration it is.
DEFAULT_STEPS_PER_ITERATION = 1


def unroll(
    cell,
    images,
    noise,
    return_canvases=False,
    steps_per_iteration=DEFAULT_STEPS_PER_ITERATION,
):
    """Runs the cell for T = noise.shape[1] steps in a tf.while_loop.

    Each loop iteration runs `steps_per_iteration` steps of `cell` (the
    largest divisor of T not above it). Same numbers as `reference_unroll`.

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
    chunk = max(
        size
        for size in range(1, min(steps_per_iteration, num_steps) + 1)
        if num_steps % size == 0
    )
    if chunk == num_steps:
        return reference_unroll(cell, images, noise, return_canvases)
    keys = _step_keys(cell, return_canvases)
    noise_time_major = tf.transpose(noise, [1, 0, 2])
    noise_array = tf.TensorArray(
        noise.dtype, size=num_steps, element_shape=noise_time_major.shape[1:]
    ).unstack(noise_time_major)
    arrays = {key: tf.TensorArray(tf.float32, size=num_steps) for key in keys}

    def body(t, arrays, state):
        for offset in range(chunk):
            outputs, state = cell((images, noise_array.read(t + offset)), state)
            arrays = {
                key: arrays[key].write(t + offset, outputs[key]) for key in keys
            }
        return t + chunk, arrays, cell_lib.DrawState(*state)

    _, arrays, state = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (tf.constant(0), arrays, cell.get_initial_state(tf.shape(images)[0])),
        maximum_iterations=num_steps // chunk,
    )
    return {key: array.stack() for key, array in arrays.items()}, state


def reference_unroll(cell, images, noise, return_canvases=False):
    """The plain formulation: the cell called T times from Python.

    Args and returns as `unroll`.
    """
    keys = _step_keys(cell, return_canvases)
    state = cell.get_initial_state(tf.shape(images)[0])
    per_step = {key: [] for key in keys}
    for t in range(noise.shape[1]):
        outputs, state = cell((images, noise[:, t]), state)
        for key in keys:
            per_step[key].append(outputs[key])
    return {key: tf.stack(per_step[key]) for key in keys}, state


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
    decoder = cell.decoder
    num_steps = noise.shape[1]
    units = cell.decoder_units
    zeros = tf.zeros([tf.shape(noise)[0], units])
    no_peephole = tf.zeros([units])
    hidden = tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.constant(num_steps, tf.int64),
        x=tf.transpose(noise, [1, 0, 2]),
        cs_prev=zeros,
        h_prev=zeros,
        w=tf.concat(
            [
                tf.convert_to_tensor(decoder.kernel),
                tf.convert_to_tensor(decoder.recurrent_kernel),
            ],
            axis=0,
        ),
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=tf.convert_to_tensor(decoder.bias),
        cell_clip=0.0,  # no clipping, as Keras
        use_peephole=False,
    )[6]  # h^dec_1..h^dec_T, [T, batch, units]
    hidden = tf.reshape(hidden, [-1, units])  # [T * batch, units]
    outputs = {}
    if cell.write_attention:
        update, window = cell.write_layer(hidden)
        outputs["write_window"] = tf.reshape(window, [num_steps, -1, 5])
    else:
        update = cell.write_layer(hidden)
    updates = tf.reshape(update, [num_steps, -1, *cell.image_shape])
    # eq. 8. Only what the caller fetches runs: a graph that needs c_T
    # alone prunes the cumulative sum.
    outputs["canvas"] = tf.cumsum(updates, axis=0)
    outputs["canvas_logits"] = tf.reduce_sum(updates, axis=0)
    return outputs


def reference_generate(cell, noise):
    """The plain formulation of generation: `generate_step` T times.

    Args and returns as `generate`.
    """
    state = cell.get_initial_state(tf.shape(noise)[0])
    canvases, windows = [], []
    for t in range(noise.shape[1]):
        outputs, state = cell.generate_step(noise[:, t], state)
        canvases.append(outputs["canvas"])
        if cell.write_attention:
            windows.append(outputs["write_window"])
    result = {"canvas": tf.stack(canvases), "canvas_logits": state.canvas}
    if windows:
        result["write_window"] = tf.stack(windows)
    return result


def _step_keys(cell, return_canvases) -> list[str]:
    """The per-step outputs to keep."""
    keys = ["latent", "posterior_mean", "posterior_log_stddev"]
    if cell.read_attention:
        keys.append("read_window")
    if cell.write_attention:
        keys.append("write_window")
    if return_canvases:
        keys.append("canvas")
    return keys
