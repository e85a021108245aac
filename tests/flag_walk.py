"""Runs a binary's main in-process once per argument list; prints results.

    python tests/flag_walk.py BINARY.py < cases.json

cases.json is a JSON list of argument lists. For each, the flags are reset
to their defaults, the binary's `main` runs under its own parser (the one
its `if __name__ == "__main__"` block uses), and one JSON line is printed:
{"args": [...], "status": exit status, "stderr": [its lines]}, after a
first line {"flags": [the flags the binary defines]}. One process
walks every case, so TensorFlow is imported once.
"""

import contextlib
import importlib.util
import io
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    """Walks the cases on stdin through the binary named by argv[1]."""
    path = os.path.abspath(sys.argv[1])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    # TensorFlow and absl define flags of their own: import them first, so
    # that the flags new after loading the binary are the binary's. (On
    # another Keras backend train.py never imports TensorFlow.)
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import tensorflow  # noqa: F401
    from absl import app, flags
    from absl.testing import absltest  # noqa: F401

    known = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location("walked_binary", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defined = sorted(set(flags.FLAGS) - known)

    program = os.path.basename(path)
    parser = getattr(module, "_parse_flags", None)
    if parser is None:
        from draw_tf import cli

        def parser(argv):
            return cli.parse_flags(argv, program)

    print(json.dumps({"flags": defined}))
    for args in json.load(sys.stdin):
        flags.FLAGS.unparse_flags()
        stderr = io.StringIO()
        status = 0
        with contextlib.redirect_stderr(stderr):
            try:
                app.run(module.main, argv=[program, *args], flags_parser=parser)
            except SystemExit as exit_:
                code = exit_.code
                status = (
                    code if isinstance(code, int) else int(code is not None)
                )
            except Exception as error:  # noqa: BLE001  (reported, not raised)
                status = "traceback"
                print(
                    f"Traceback: {type(error).__name__}: {error}", file=stderr
                )
        lines = [line for line in stderr.getvalue().splitlines() if line]
        print(json.dumps({"args": args, "status": status, "stderr": lines}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
