#!/usr/bin/env bash
# Regenerate constraints.txt (the lock file) from the current virtual environment.
set -euo pipefail
VENV=${VENV:-.venv}
{
  echo "# Lock file: exact versions of every package in the environment; regenerate with 'make lock'."
  "$VENV/bin/python" -m pip freeze --exclude-editable | grep -v "^-e " | grep -iv "^promolake" \
    | grep -iv "^horovod"
  # Horovod is built from source by scripts/bootstrap.sh (C++17 patch) against the pinned torch.
  grep -o '"horovod==[^"]*"' setup.py | tr -d '"'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins"
