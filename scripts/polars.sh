#!/usr/bin/env bash
# polars for the end-to-end benchmark's polars script
# (benches/reference/polars_job.py), in a virtual environment of its own
# under the tools directory; prints the environment's python.
#
#   scripts/polars.sh        install polars if missing, print the python path
#
# Pinned so that every run of the benchmark measures the same polars.
set -euo pipefail

POLARS_VERSION=2.1.0
TOOLS=${SLUICE_TOOLS:-$HOME/.cache/sluice/tools}
VENV=$TOOLS/polars-$POLARS_VERSION
PY=$VENV/bin/python

if ! "$PY" -c "import polars" >/dev/null 2>&1; then
    echo "polars.sh: installing polars $POLARS_VERSION from PyPI into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check "polars==$POLARS_VERSION"
fi
echo "$PY"
