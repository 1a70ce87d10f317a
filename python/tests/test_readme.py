"""The examples in python/README.md run and print what the README says."""

from __future__ import annotations

import doctest
from pathlib import Path


def test_readme_examples() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    failed, attempted = doctest.testfile(str(readme), module_relative=False, verbose=False)
    assert attempted >= 10
    assert failed == 0
