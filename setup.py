"""Package discovery for the `physim.operators` / `physim.envs` mapping.

Metadata and the package-dir mapping live in pyproject.toml. setuptools' own
discovery cannot follow a mapping into another folder, so this file lists the
subpackages of each mapped root; a new subpackage never has to be listed by hand.
"""

from setuptools import find_packages, setup

ROOTS = {"physim": "physim", "physim.operators": "operators", "physim.envs": "envs"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)
