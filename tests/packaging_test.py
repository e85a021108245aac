"""`pip install .` gives a working draw_tf, its models included."""

import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

from draw_tf import pretrained

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
        f"draw_tf/{path.name}" for path in (ROOT / "draw_tf").glob("*.py")
    }
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
    for package in ("tensorflow", "keras", "tensorflow-probability", "numpy"):
        assert any(re.match(rf"{package}[<>=]", r) for r in requires), requires
    # Installed into a fresh venv (dependencies from this environment), it
    # imports from site-packages, not from the checkout, with its models.
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
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
