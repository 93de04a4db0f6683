#!/usr/bin/env bash
# Creates the virtual environment and installs promolake with every extra, on a fresh machine.
# Heavy downloads and builds are cached outside the repository (PROMOLAKE_CACHE, default
# ~/.cache/promolake; pip's own cache in ~/.cache/pip; Ivy jars in ~/.ivy2), so warm runs take seconds.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
CACHE=${PROMOLAKE_CACHE:-$HOME/.cache/promolake}
TORCH_VERSION=$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' setup.py)
HOROVOD_VERSION=$(sed -n 's/.*"horovod==\([^"]*\)".*/\1/p' setup.py)
WHEELS="$CACHE/wheels/horovod-$HOROVOD_VERSION-torch-$TORCH_VERSION"
STAMP="$VENV/.promolake-installed"
DIGEST=$(cat setup.py constraints.txt scripts/bootstrap.sh scripts/build_horovod.sh | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$DIGEST" ]; then
  exit 0
fi
t0=$(date +%s)
step() { echo "[bootstrap $(( $(date +%s) - t0 ))s] $*"; }

if ! command -v java >/dev/null 2>&1; then
  echo "bootstrap: Java (JDK 11 or 17) is required by Spark; install it (e.g. apt-get install openjdk-17-jdk-headless)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -c constraints.txt pip setuptools wheel

step "installing torch $TORCH_VERSION (needed before Horovod is built)"
"${PIP[@]}" install -q -c constraints.txt "torch==$TORCH_VERSION"

if ! ls "$WHEELS"/horovod-*.whl >/dev/null 2>&1; then
  step "building Horovod $HOROVOD_VERSION against torch $TORCH_VERSION (C++17 patch; about 7 minutes, cached in $WHEELS)"
  bash scripts/build_horovod.sh "$VENV/bin/python" "$HOROVOD_VERSION" "$WHEELS"
fi

step "installing promolake with extras local, train and dev"
"${PIP[@]}" install -q -c constraints.txt --find-links "$WHEELS" --prefer-binary -e ".[local,train,dev]"
"$VENV/bin/python" -c "import horovod.torch, pyspark, delta, petastorm, transformers, mlflow" \
  || { echo "bootstrap: installed packages do not import; see the errors above" >&2; exit 1; }
echo "$DIGEST" > "$STAMP"
step "done"
