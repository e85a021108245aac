"""The binaries' command line: every user error is one line, exit 2.

    if __name__ == "__main__":
        cli.run(main, "train.py")

parses the flags (absl), and a bad flag, a missing required flag, an
unknown flag or a stray argument ends the program with
`train.py: error: <what was wrong and what was expected>` on stderr and
exit status 2, instead of absl's two-line FATAL message or a usage dump.
Errors that `main` finds itself are printed the same way by `fail`.
"""

import json
import os
import sys

from absl import app, flags


def fail(program: str, message, status: int = 2):
    """Prints `<program>: error: <message>` on one line and exits."""
    text = " ".join(str(message).split())
    print(f"{program}: error: {text}", file=sys.stderr, flush=True)
    sys.exit(status)


def parse_flags(argv: list[str], program: str) -> list[str]:
    """Absl's flag parsing, with one-line errors; returns [argv[0]]."""
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as error:
        fail(program, f"{error} (see --helpfull)")
    if len(remaining) > 1:
        fail(
            program,
            f"unexpected arguments {' '.join(remaining[1:])!r}: every input "
            "is a --flag (see --helpfull).",
        )
    return remaining


def run(main, program: str, argv: list[str] | None = None):
    """`absl.app.run(main)` with `parse_flags`' one-line errors."""
    app.run(
        main,
        argv=argv,
        flags_parser=lambda arguments: parse_flags(arguments, program),
    )


def output_path_error(flag: str, path: str) -> str | None:
    """Why `path` can't take a JSON report (--flag=path), or None if it can.

    Checked before the work, so that a bad path doesn't lose its result.
    """
    if not path:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"--{flag}={path}: directory {directory} does not exist."
    if os.path.isdir(path):
        return f"--{flag}={path} is a directory; expected a JSON file path."
    return None


def print_json(value, path: str = "") -> None:
    """Prints `value` as indented JSON on stdout, and writes it to `path`."""
    text = json.dumps(value, indent=2)
    if path:
        with open(path, "w") as file:
            file.write(text + "\n")
    print(text)
