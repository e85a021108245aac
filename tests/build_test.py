"""The Bazel BUILD files keep up with the code.

Every library module has a py_library whose deps list the draw_tf modules
it imports, every test file a pytest_test, every binary a py_binary. Runs
under pytest (over the source tree) and under Bazel (over the runfiles,
where the BUILD files export every .py of their package).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("draw_tf", "draw_tf/tensorflow", "export", "serving", "bench")
BINARIES = {
    ".": ["train.py"],
    "export": [
        "export_saved_model.py",
        "plot_curves.py",
        "ship_judge.py",
        "ship_pretrained.py",
    ],
    "serving": ["client.py", "session_benchmark.py"],
    "bench": [
        "cluttered_errors.py",
        "compare_checkouts.py",
        "instructed_start.py",
        "keras_throughput.py",
        "peer_training.py",
        "run_benchmarks.py",
        "time_to_quality.py",
    ],
}


def _targets(build_text):
    """{name: (rule, block text)} of the rules in a BUILD file."""
    targets = {}
    for match in re.finditer(
        r"^(\w+)\(\n(.*?)^\)", build_text, re.DOTALL | re.MULTILINE
    ):
        rule, body = match.groups()
        name = re.search(r'name = "([^"]+)"', body)
        if name:
            targets[name.group(1)] = (rule, body)
    return targets


def _sources(package):
    directory = ROOT / package
    return sorted(
        path.name
        for path in directory.glob("*.py")
        if path.name != "__init__.py"
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_is_in_a_target_of_its_package(package):
    text = (ROOT / package / "BUILD").read_text()
    targets = _targets(text)
    sources = _sources(package)
    assert sources, f"no sources found in {package}"
    for source in sources:
        owners = [
            name
            for name, (rule, body) in targets.items()
            if rule in ("py_library", "py_binary") and f'"{source}"' in body
        ]
        assert owners, f"{package}/{source} has no py_library or py_binary"


@pytest.mark.parametrize("package", ["draw_tf", "draw_tf/tensorflow"])
def test_library_deps_follow_the_imports(package):
    targets = _targets((ROOT / package / "BUILD").read_text())
    for source in _sources(package):
        module = source[:-3]
        rule, body = targets[module]
        assert rule == "py_library", module
        code = (ROOT / package / source).read_text()
        imported = set()
        pattern = (
            r"^from draw_tf(\.tensorflow)? import (?:\((.*?)\)|([^(\n]+))$"
        )
        for subpackage, listed, single in re.findall(
            pattern, code, re.M | re.S
        ):
            where = "draw_tf/tensorflow" if subpackage else "draw_tf"
            for item in (listed or single).split(","):
                if item.strip():
                    imported.add((where, item.split()[0]))  # "data as data_lib"
        for where, dependency in sorted(imported - {(package, module)}):
            if where == "draw_tf" and dependency == "tensorflow":
                continue
            label = (
                f'":{dependency}"'
                if where == package
                else f'"//{where}:{dependency}"'
            )
            assert label in body, (
                f"//{package}:{module} imports {dependency} but does not "
                f"depend on {label}"
            )


def test_binaries_have_py_binary_targets():
    for package, binaries in BINARIES.items():
        targets = _targets((ROOT / package / "BUILD").read_text())
        for binary in binaries:
            name = binary[:-3]
            assert name in targets, f"{package}/{binary}: no target {name}"
            assert targets[name][0] == "py_binary", name


def test_every_test_file_has_a_bazel_test():
    text = (ROOT / "tests" / "BUILD").read_text()
    declared = set(re.findall(r'pytest_test\(\n\s+name = "(\w+)"', text))
    files = {path.stem for path in (ROOT / "tests").glob("*_test.py")}
    assert files, "no test files found"
    assert files <= declared, f"no Bazel target for {sorted(files - declared)}"
    helpers = {
        path.name
        for path in (ROOT / "tests").glob("*.py")
        if not path.stem.endswith("_test")
    }
    support = text + (ROOT / "tests" / "pytest.bzl").read_text()
    for helper in helpers:
        assert f'"{helper}"' in support, f"tests/{helper} is in no target"
