"""Package discovery with the `physim.operators` / `physim.envs` mapping.

Metadata lives in pyproject.toml. This file only maps the top-level folders
`operators/` and `envs/` into the `physim` namespace and discovers their
subpackages, so a new subpackage never has to be listed by hand.
"""

from setuptools import find_packages, setup

ROOTS = {"physim": "physim", "physim.operators": "operators", "physim.envs": "envs"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=ROOTS,
    package_data={"physim": ["py.typed"]},
)
