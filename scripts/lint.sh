#!/usr/bin/env bash
# The linters `make test` runs before the tests: ruff (every Python file, the images' scripts included), mypy --strict
# (src/vre), shellcheck (every shell script under images/, scripts/ and .ci/). The import-cycle check is a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."

ruff check .
mypy

# Scripts with a sh/bash shebang, and the layers' start hooks (no shebang: sourced by images/foundation/start, sh).
mapfile -t scripts < <(find images scripts .ci -type f -not -path '*/node_modules/*' -print0 \
    | xargs -0 grep -lE '^#!(/usr/bin/env )?(/usr)?(/bin/)?(ba|da)?sh( |$)' | sort)
mapfile -t hooks < <(find images -mindepth 2 -maxdepth 2 -type f -name start -print0 \
    | xargs -0 grep -LE '^#!' | sort)
# SC1090: the hook runners source files found at run time (shellcheck cannot follow them, by design).
shellcheck --exclude=SC1090 "${scripts[@]}"
shellcheck --shell=sh "${hooks[@]}"
echo "lint: ruff, mypy and shellcheck clean (${#scripts[@]} scripts, ${#hooks[@]} start hooks)"
