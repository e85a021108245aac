"""The model of each task, built from a config or a shipped record.

task        model                                    draw_tf module
generate    DrawModel (DRAW, the paper's)            model
classify    DrawClassifier (attention classifier)    classifier
instruct    ConditionalDrawModel (told what to draw) conditional_model
judge       DigitJudge (reads instructed canvases)   judge

model = models.build(config, image_shape)
model = models.build_from_architecture(record["architecture"], shape)
"""

import keras

from draw_tf import config as config_lib
from draw_tf.classifier import DrawClassifier
from draw_tf.conditional_model import ConditionalDrawModel
from draw_tf.judge import DigitJudge
from draw_tf.model import DrawModel

MODEL_CLASSES = {
    "generate": DrawModel,
    "classify": DrawClassifier,
    "instruct": ConditionalDrawModel,
}


def build(config: config_lib.TrainConfig, image_shape) -> keras.Model:
    """The config's untrained model, named "draw", for these images."""
    model_class = MODEL_CLASSES[config.task]
    return model_class(**config.model_kwargs(image_shape), name="draw")


def build_from_architecture(architecture: dict, image_shape) -> keras.Model:
    """An untrained model of a record's architecture and image shape."""
    if architecture.get("task") == "judge":
        return DigitJudge(
            filters=architecture["filters"],
            units=architecture["units"],
            name="digit_judge",
        )
    config = config_lib.TrainConfig.from_dict(architecture, workdir="-")
    return build(config, image_shape)
