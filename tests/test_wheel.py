"""A built wheel, installed elsewhere, carries the named pipelines."""

import shutil
import subprocess
import sys

from tests.conftest import REPO


def test_an_installed_wheel_lists_and_loads_the_named_pipelines(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("keras_s2s", "pipelines"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"), "."],
        cwd=source, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("keras_s2s-*.whl")
    target = tmp_path / "installed"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import keras_s2s.config as c; "
        "print(c.pipelines_directory()); "
        "print(','.join(c.available_pipelines())); "
        "print(c.load_pipeline('date_attention')['model']['decoder'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    directory, names, decoder = result.stdout.split("\n")[:3]
    assert directory == str(target / "keras_s2s" / "pipelines")
    expected = sorted(p.stem for p in (REPO / "pipelines").glob("*.toml"))
    assert names.split(",") == expected and "date_attention" in expected
    assert decoder == "bahdanau"
