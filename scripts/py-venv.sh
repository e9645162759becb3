#!/usr/bin/env bash
# A virtual environment with the Python library netcore==0.1.3, for the interop tests
# (tests/py_interop.rs), cached in target/py-venv: made once, reused while it still
# imports netcore 0.1.3. Installs from the wheel in ../shared/interop/vectors/ when
# there is one, else from the package index. Prints the venv's python on success.
#   scripts/py-venv.sh            # make or reuse, print target/py-venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/py-venv
python="$venv/bin/python"
ready() { [ -x "$python" ] && "$python" -c 'import netcore, sys; sys.exit(netcore.__version__ != "0.1.3")' 2>/dev/null; }

mkdir -p target
# Tests running at once make it once: the others wait for the first.
exec 9>target/py-venv.lock
flock 9
if ! ready; then
  command -v python3 >/dev/null || { echo "py-venv: python3 is missing" >&2; exit 2; }
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  wheel=../shared/interop/vectors/netcore-0.1.3-py3-none-any.whl
  if [ -f "$wheel" ]; then
    "$python" -m pip install --quiet --disable-pip-version-check "$wheel" >&2
  else
    "$python" -m pip install --quiet --disable-pip-version-check "netcore==0.1.3" >&2
  fi
  ready || { echo "py-venv: netcore 0.1.3 does not import in $venv" >&2; exit 1; }
fi
echo "$PWD/$python"
