"""Trains the PyTorch peer's DRAW on MNIST and logs its validation -ELBO.

The peer is kamenbliznashki/generative_models' draw.py (not part of this
repository): its `DRAW` model and `loss_fn` are imported from the path
given, with the modules it imports for its own command line (tqdm,
torchvision, utils) stubbed, as ../shared/bench/peer_throughput.py does.
Runs in the peer's virtual environment (torch and numpy; no TensorFlow):

    PEER_PYTHON bench/peer_training.py PEER/draw.py --data=mnist.npz \
        --log=peer.jsonl

bench/time_to_quality.py writes `--data` (the splits draw_tf trains and
validates on) and runs this beside train.py. The recipe is the paper's
MNIST model (T = 64, 256 units, |z| = 100, read 2 x 2, write 5 x 5) with
the peer's own training choices (Adam, lr 1e-3, betas (0.5, 0.999),
gradient norm clipped to 10, a constant rate), at draw_tf's batch of 100
and on draw_tf's data: training images binarized afresh at every step,
validation images binarized once.

Every `--eval_every_steps` steps it appends one JSON line to `--log`:
{"step", "epoch", "negative_elbo"} (nats per image, the mean over the
validation images of -log p(x | c_T) + sum_t KL(q(z_t) || N(0, I)), one
sample of z per image, as draw_tf's validation). It stops after
`--max_steps`.
"""

import argparse
import importlib.machinery
import importlib.util
import json
import sys
import types

import numpy as np
import torch

# What draw.py imports for its own command line and data loading, which
# the model and the loss do not use.
_STUBBED_MODULES = (
    "tqdm",
    "torchvision",
    "torchvision.transforms",
    "torchvision.datasets",
    "torchvision.utils",
    "utils",
)


def import_peer(path: str):
    """The peer's draw.py as a module, its unused imports stubbed."""
    for name in _STUBBED_MODULES:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module
    sys.modules["tqdm"].tqdm = object
    sys.modules["torchvision.datasets"].MNIST = object
    sys.modules["torchvision.utils"].save_image = None
    sys.modules["torchvision.utils"].make_grid = None
    torchvision = sys.modules["torchvision"]
    torchvision.transforms = sys.modules["torchvision.transforms"]
    spec = importlib.util.spec_from_file_location("peer_draw", path)
    module = importlib.util.module_from_spec(spec)
    saved_argv, sys.argv = sys.argv, [path]  # it parses its flags on import
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = saved_argv
    return module


def parse_arguments(argv):
    """The command line (argv without the program); exits on a bad one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer", help="the peer's draw.py")
    parser.add_argument(
        "--data",
        required=True,
        help="npz with train [N, 784] uint8 intensities and validation "
        "[M, 784] uint8 binary images (0 or 255)",
    )
    parser.add_argument("--log", required=True, help="JSON lines written here")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--time_steps", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--latent_size", type=int, default=100)
    parser.add_argument("--eval_every_steps", type=int, default=500)
    parser.add_argument("--eval_batch", type=int, default=500)
    parser.add_argument("--max_steps", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    for name in (
        "batch",
        "time_steps",
        "units",
        "latent_size",
        "eval_every_steps",
        "eval_batch",
        "max_steps",
        "threads",
    ):
        value = getattr(arguments, name)
        if value < 1:
            parser.error(f"--{name} must be >= 1; got {value}")
    return arguments


def load_data(path: str) -> tuple:
    """(train [N, 784] float intensities, validation [M, 784] binary)."""
    with np.load(path) as data:
        train, validation = data["train"], data["validation"]
    for name, images in (("train", train), ("validation", validation)):
        shape_ok = images.ndim == 2 and images.shape[1] == 784
        if not shape_ok or images.dtype != np.uint8:
            raise SystemExit(
                f"{path}: {name} must be [count, 784] uint8; got "
                f"{list(images.shape)} {images.dtype}"
            )
    if not np.isin(validation, (0, 255)).all():
        raise SystemExit(f"{path}: validation must be binary (0 or 255).")
    return (
        torch.from_numpy(train.astype(np.float32) / 255.0),
        torch.from_numpy(validation.astype(np.float32) / 255.0),
    )


def validation_negative_elbo(model, loss_fn, validation, batch) -> float:
    """Mean -ELBO per image over the validation images, in nats."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(validation), batch):
            images = validation[start : start + batch]
            likelihood, posterior = model(images)
            total += float(loss_fn(likelihood, posterior, images)) * len(images)
    return total / len(validation)


def main(argv=None):
    """Trains, validating every --eval_every_steps; see the module doc."""
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    torch.manual_seed(arguments.seed)
    peer = import_peer(arguments.peer)
    peer.args = types.SimpleNamespace(
        image_dims=(1, 28, 28),
        time_steps=arguments.time_steps,
        z_size=arguments.latent_size,
        lstm_size=arguments.units,
        read_size=2,
        write_size=5,
        use_read_attn=True,
        use_write_attn=True,
        device=torch.device("cpu"),
    )
    model = peer.DRAW(peer.args)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=arguments.learning_rate, betas=(0.5, 0.999)
    )
    train, validation = load_data(arguments.data)
    generator = torch.Generator().manual_seed(arguments.seed)
    steps_per_epoch = len(train) // arguments.batch
    order = torch.randperm(len(train), generator=generator)
    with open(arguments.log, "a") as log:
        for step in range(1, arguments.max_steps + 1):
            position = (step - 1) % steps_per_epoch
            if position == 0 and step > 1:
                order = torch.randperm(len(train), generator=generator)
            start = position * arguments.batch
            indices = order[start : start + arguments.batch]
            images = torch.bernoulli(train[indices], generator=generator)
            model.train()
            likelihood, posterior = model(images)
            loss = peer.loss_fn(likelihood, posterior, images)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
            optimizer.step()
            if not torch.isfinite(loss):
                raise SystemExit(f"step {step}: the loss is {float(loss)}")
            if step % arguments.eval_every_steps == 0:
                model.eval()
                record = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 3),
                    "negative_elbo": validation_negative_elbo(
                        model, peer.loss_fn, validation, arguments.eval_batch
                    ),
                }
                log.write(json.dumps(record) + "\n")
                log.flush()


if __name__ == "__main__":
    main()
