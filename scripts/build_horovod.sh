#!/usr/bin/env bash
# Build a Horovod wheel (PyTorch + Gloo, CPU operations) against the torch installed in PYTHON's environment,
# into WHEELS, unless one is there already. Used by scripts/bootstrap.sh (the local environment) and
# scripts/runtime_check.py (the 15.4 LTS ML runtime profile, whose runtime ships Horovod built against its torch).
#   scripts/build_horovod.sh PYTHON HOROVOD_VERSION WHEELS
# The PyPI sdist forces C++14; torch >= 2.1 headers need C++17 (horovod/horovod#3996, fixed upstream but
# unreleased), so the sdist is patched. About 7 minutes on 2 cores.
set -euo pipefail
PYTHON=$1
HOROVOD_VERSION=$2
WHEELS=$3
if ls "$WHEELS"/horovod-"$HOROVOD_VERSION"-*.whl >/dev/null 2>&1; then
  exit 0
fi
PIP=("$PYTHON" -m pip --disable-pip-version-check)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# build tools go into the build folder, not the environment (a runtime profile's must stay as the runtime has it);
# the machine's cmake is used where there is one (cmake 4 refuses Horovod's bundled gloo: cmake_minimum_required < 3.5)
tools=(packaging)
command -v cmake >/dev/null 2>&1 || tools+=("cmake<4")
"${PIP[@]}" install -q --target "$build/tools" "${tools[@]}"
export PATH="$PATH:$build/tools/bin" PYTHONPATH="$build/tools${PYTHONPATH:+:$PYTHONPATH}"
"${PIP[@]}" download -q --no-deps --no-binary :all: -d "$build" "horovod==$HOROVOD_VERSION"
tar -xzf "$build"/horovod-*.tar.gz -C "$build"
src=$(find "$build" -maxdepth 1 -type d -name "horovod-*" | head -1)
sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
mkdir -p "$WHEELS"
HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1 \
  HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=GLOO MAKEFLAGS="-j$(nproc)" \
  "${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$build/dist" "$src"
mv "$build"/dist/horovod-*.whl "$WHEELS/"
