"""pytest_test: a py_test that runs one pytest file through pytest_main.py."""

def pytest_test(name, srcs = [], deps = [], data = [], size = "medium", **kwargs):
    """A py_test running `<name>.py` with pytest.

    Args:
      name: the test's name; its file is `<name>.py`.
      srcs: more sources the test imports or runs.
      deps: libraries under test.
      data: files the test reads.
      size: the Bazel test size.
      **kwargs: more py_test arguments.
    """
    native.py_test(
        name = name,
        srcs = ["pytest_main.py", name + ".py"] + srcs,
        main = "pytest_main.py",
        args = ["$(location %s.py)" % name],
        python_version = "PY3",
        size = size,
        data = data,
        deps = deps + [":test_support"],
        **kwargs
    )
