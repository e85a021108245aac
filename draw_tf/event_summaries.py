"""TensorBoard summaries without TensorFlow: scalars and images.

The run loop (`draw_tf.trainer`) writes its training and validation
numbers and sample grids to `<workdir>/tensorboard/` with TensorBoard's own
event writer, on both engines and every backend (TensorFlow need not be
installed), under one set of tags (`train/negative_elbo`,
`validation/negative_elbo`, `samples`, ...), so `tensorboard
--logdir=WORKDIR` shows a run of either backend alike.

    writer = event_summaries.EventWriter(directory)
    writer.scalar("train/negative_elbo", 84.2, step=500)
    writer.image("samples", pil_image, step=500)
    writer.flush()
"""

import io
import os
import socket
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter


class EventWriter:
    """Appends summaries to a new TensorBoard events file in `directory`.

    Plain file writes (TensorBoard's own `EventFileWriter` reaches for
    TensorFlow's file system when TensorFlow is installed, importing it).
    """

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        name = (
            f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
            f".{os.getpid()}.v2"
        )
        self._writer = RecordWriter(open(os.path.join(directory, name), "wb"))
        header = event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2"
        )
        self._writer.write(header.SerializeToString())

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar at `step`."""
        self._write(
            summary_pb2.Summary.Value(tag=tag, simple_value=float(value)), step
        )

    def image(self, tag: str, picture, step: int) -> None:
        """One picture (a PIL image) at `step`, PNG-encoded."""
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="PNG")
        encoded = summary_pb2.Summary.Image(
            height=picture.height,
            width=picture.width,
            colorspace=3,
            encoded_image_string=buffer.getvalue(),
        )
        self._write(summary_pb2.Summary.Value(tag=tag, image=encoded), step)

    def flush(self) -> None:
        """Writes what is buffered to disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the events file."""
        self._writer.close()

    def _write(self, value, step: int) -> None:
        event = event_pb2.Event(
            wall_time=time.time(),
            step=int(step),
            summary=summary_pb2.Summary(value=[value]),
        )
        self._writer.write(event.SerializeToString())
