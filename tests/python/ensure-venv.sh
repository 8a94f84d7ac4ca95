#!/usr/bin/env bash
# Creates or refreshes the Python venv of the tests: stdatamodels (validates mkrefs' reference
# files) and jwst (the jwst backend's test and the native engine's fidelity test).
#
#   tests/python/ensure-venv.sh VENV_DIR      (e.g. target/test-venv)
#
# Idempotent: it installs tests/python/requirements.txt only when the venv is new or the
# requirements changed since the last successful install (a stamp file in the venv holds their
# hash). Needs python3 with the venv module; set PYTHON to use another interpreter.
# The Rust tests find the venv at <workspace>/target/test-venv, or through MKREFS_TEST_PYTHON.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 VENV_DIR" >&2
  exit 2
fi
venv=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/requirements.txt"
stamp="$venv/.mkrefs-requirements.sha256"
python=${PYTHON:-python3}

want=$(sha256sum "$req" | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ]; then
  echo "ensure-venv: creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "ensure-venv: $venv is up to date with $req"
  exit 0
fi

echo "ensure-venv: installing $req into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import stdatamodels, astropy, numpy, jwst; print("ensure-venv: stdatamodels", stdatamodels.__version__, "astropy", astropy.__version__, "numpy", numpy.__version__, "jwst", jwst.__version__)'
echo "$want" > "$stamp"
echo "ensure-venv: done"
