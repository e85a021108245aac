"""Runs one pytest file: the `main` of every py_test in tests/BUILD.

    pytest_main.py tests/attention_test.py

Bazel runs test binaries as scripts; the tests are pytest modules, so this
hands the file to pytest (with its temporary files under Bazel's
TEST_TMPDIR) and exits with pytest's status.
"""

import os
import sys

import pytest

if __name__ == "__main__":
    arguments = [*sys.argv[1:], "-p", "no:cacheprovider"]
    if os.environ.get("TEST_TMPDIR"):
        arguments += [
            "--basetemp",
            os.path.join(os.environ["TEST_TMPDIR"], "pytest"),
        ]
    sys.exit(pytest.main(arguments))
