"""Which packages the wheel holds, found rather than listed by hand (a package left out of a
hand-written list once shipped a cnncost without cnncost.advise): every folder of Python
modules under cnncost/, and the bundled specs (specs/ at the top of the repository, mapped to
cnncost/specs by pyproject.toml's package-dir). Everything else is in pyproject.toml;
tests/test_wheel.py holds the built wheel to the source tree."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["cnncost", "cnncost.*"],
                                         exclude=["*.__pycache__"]), "cnncost.specs"])
