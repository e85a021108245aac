"""What belongs to TensorFlow alone: the tf.distribute engine.

The portable model (`draw_tf.attention`, `cell`, `model`, `losses`,
`classifier`, `schedules`), the data readers and the run loop
(`draw_tf.trainer`) run on every Keras backend; the modules of this
package import TensorFlow:

    distributed_engine   the tf.distribute engine of the run loop: a
                         compiled per-replica step under MirroredStrategy
                         or MultiWorkerMirroredStrategy, TensorFlow
                         checkpoints, tf.data batches
    distribution         the strategies: MirroredStrategy over local
                         devices, MultiWorkerMirroredStrategy (TF_CONFIG)
    unrolling            TensorFlow's fast path of the DRAW loop
                         (tf.while_loop) and of generation (BlockLSTMV2)
"""
