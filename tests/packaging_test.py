"""`pip install .` gives a working draw_tf, its models included."""

import pathlib
import re
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

from draw_tf import pretrained

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _build_wheel(tmp_path) -> pathlib.Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "draw_tf",
        source / "draw_tf",
        ignore=shutil.ignore_patterns("__pycache__", ".tmp-*"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheels").glob("draw_tf-*.whl")
    return wheel


def test_wheel_installs_and_imports_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(
            archive.read(name).decode()
            for name in names
            if name.endswith(".dist-info/METADATA")
        )
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "draw_tf").glob("**/*.py")
    }
    assert "draw_tf/tensorflow/distributed_engine.py" in modules
    assert modules <= names, modules - names
    for name in pretrained.names():
        for file in (pretrained.WEIGHTS_FILE, pretrained.RECORD_FILE):
            assert f"draw_tf/pretrained_models/{name}/{file}" in names
    assert not [
        name
        for name in names
        if name.split("/")[0] in ("tests", "bench", "export", "serving")
    ]
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    # The core needs no backend; each backend is an extra.
    core = [r for r in requires if "extra ==" not in r]
    for package in ("keras", "numpy", "absl-py", "pillow"):
        assert any(re.match(rf"{package}[<>=]", r) for r in core), core
    assert not [r for r in core if re.match(r"(tensorflow|jax)", r)], core
    extras = {
        extra: [
            r.split(";")[0].strip()
            for r in requires
            if re.search(rf"extra == ['\"]{extra}['\"]", r)
        ]
        for extra in ("tensorflow", "jax", "serving")
    }
    for package in (
        "tensorflow",
        "tensorflow-probability",
        "tensorflow-datasets",
    ):
        assert any(
            re.match(rf"{package}[<>=]", r) for r in extras["tensorflow"]
        )
    assert [r for r in extras["jax"] if re.match(r"jax[<>=]", r)], extras
    assert [r for r in extras["jax"] if re.match(r"tensorboard[<>=]", r)]
    assert not [r for r in extras["jax"] if "tensorflow" in r], extras
    assert any("tensorflow-serving-api" in r for r in extras["serving"])
    assert any(
        re.match(r"draw[-_]tf\[tensorflow\]", r) for r in extras["serving"]
    )
    assert "draw_tf/sample_data/mnist_test_500.npz" in names
    # Installed into a fresh venv, it imports from site-packages, not from
    # the checkout, with its models. The dependencies come from THIS
    # environment's site-packages (a .pth file): `--system-site-packages`
    # would give the base interpreter's instead, not a venv's.
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    venv_site = subprocess.run(
        [
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    ours = [
        path
        for path in [*site.getsitepackages(), site.getusersitepackages()]
        if pathlib.Path(path).is_dir()
    ]
    (pathlib.Path(venv_site) / "outer_environment.pth").write_text(
        "\n".join(ours) + "\n"
    )
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = subprocess.run(
        [
            python,
            "-c",
            "import draw_tf; print(draw_tf.__file__); "
            "print(','.join(draw_tf.pretrained.names()))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    location, shipped = result.stdout.strip().splitlines()
    assert str(venv) in location and str(ROOT) not in location
    assert shipped.split(",") == (pretrained.names() or [""])
