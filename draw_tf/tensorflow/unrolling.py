"""TensorFlow's fast paths of `draw_tf.unrolling`.

`unroll`: the cell's steps in one `tf.while_loop` whose per-step outputs
go to TensorArrays; `decoder_hidden_states`: the decoder LSTM over all T
steps as one `BlockLSTMV2` op (a TensorFlow core kernel; its gates are in
Keras' i, f, c, o order, and its weight is [W; U] stacked, the input rows
first). `draw_tf.unrolling` calls them when Keras runs on TensorFlow;
tests/unrolling_test.py checks them against the plain formulation.
"""

import keras
import tensorflow as tf

from draw_tf import cell as cell_lib


def unroll(cell, images, noise, keys, steps_per_iteration):
    """The cell over T = noise.shape[1] steps in a tf.while_loop.

    Args:
      cell: a built `DrawCell`.
      images: [batch, height, width, channels] float32, x.
      noise: [batch, T, latent_size] eps_1..eps_T.
      keys: the cell outputs to keep, see `unrolling.step_keys`.
      steps_per_iteration: steps per loop iteration; the largest divisor of
        T not above it is used.

    Returns:
      (per-step outputs {key: [T, batch, ...]}, final `DrawState`).
    """
    num_steps = noise.shape[1]
    chunk = max(
        size
        for size in range(1, min(steps_per_iteration, num_steps) + 1)
        if num_steps % size == 0
    )
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

    # The weights are read once, before the loop, and the body sees those
    # tensors (loop invariants) instead of reading the variables itself: a
    # read inside the body is an intermediate that the loop's gradient
    # stacks at every step ([T, 264, 1024] for the encoder's kernel alone).
    weights = [
        (variable, tf.convert_to_tensor(variable.value))
        for variable in cell.variables
    ]
    with keras.StatelessScope(state_mapping=weights):
        _, arrays, state = tf.while_loop(
            lambda t, *_: t < num_steps,
            body,
            (
                tf.constant(0),
                arrays,
                cell.get_initial_state(tf.shape(images)[0]),
            ),
            maximum_iterations=num_steps // chunk,
        )
    return {key: array.stack() for key, array in arrays.items()}, state


def decoder_hidden_states(cell, noise):
    """h^dec_1..h^dec_T from z_1..z_T (eq. 7) in one BlockLSTMV2 op.

    In float32; a cell of another precision runs `DrawCell.decoder_step`
    in a tf.while_loop instead.

    Args:
      cell: a built `DrawCell`.
      noise: [batch, T, latent_size] float32 z_1..z_T.

    Returns:
      [T, batch, decoder_units].
    """
    if cell.precision != "fp32":
        return _decoder_hidden_states_loop(cell, noise)
    decoder = cell.decoder
    units = cell.decoder_units
    zeros = tf.zeros([tf.shape(noise)[0], units])
    no_peephole = tf.zeros([units])
    return tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.constant(noise.shape[1], tf.int64),
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
    )[6]


def _decoder_hidden_states_loop(cell, noise):
    """`decoder_hidden_states` by `DrawCell.decoder_step`, step by step."""
    num_steps = noise.shape[1]
    latents = tf.transpose(noise, [1, 0, 2])
    zeros = tf.zeros([tf.shape(noise)[0], cell.decoder_units])

    def body(t, state, hidden_states):
        hidden, state = cell.decoder_step(latents[t], state)
        return t + 1, state, hidden_states.write(t, hidden)

    _, _, hidden_states = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (0, [zeros, zeros], tf.TensorArray(tf.float32, size=num_steps)),
        maximum_iterations=num_steps,
    )
    return hidden_states.stack()
