"""`vre-compat [pytest args...]`: run the bundled tests for the layers installed in this image.

Layer selection happens in tests/conftest.py (from /opt/vre/layers.txt, $VRE_LAYERS_FILE or --vre-layers), so
`-m`, `-k`, `-x`, `--junitxml=...` and any other pytest argument combine with it; the exit code is pytest's.
"""
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent / "tests"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    # -c/--rootdir pin the bundled pytest.ini: a pytest.ini/pyproject.toml in the user's cwd must not change the run.
    return int(pytest.main(["-c", str(TESTS / "pytest.ini"), "--rootdir", str(TESTS), *args, str(TESTS)]))


if __name__ == "__main__":
    raise SystemExit(main())
