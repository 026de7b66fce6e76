"""Packages for setuptools (the rest of the metadata is in pyproject.toml).

The named pipelines live at the top of the repository (`pipelines/`) and ship inside the
package as `keras_s2s/pipelines/`, where `keras_s2s.config.pipelines_directory` finds them in
an installed wheel; `pyproject.toml` alone cannot add a mapped folder to the packages it finds.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["keras_s2s*"]) + ["keras_s2s.pipelines"],
    package_dir={"keras_s2s.pipelines": "pipelines"},
    package_data={"keras_s2s.pipelines": ["*.toml"]},
)
