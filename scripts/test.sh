#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, then vitest and pytest.
#   - Debian packages for training/ (PyTorch, NumPy, pytest, onnx) through apt-get
#   - npm packages from the committed lock file
#   - Redis and PostgreSQL (Debian packages), started on loopback for the vote-store tests
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(python3-torch python3-numpy python3-pytest python3-onnx)
if ! /usr/bin/python3 -c "import torch, numpy, pytest, onnx" >/dev/null 2>&1; then
  echo "installing Debian packages: ${DEBIAN_PACKAGES[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${DEBIAN_PACKAGES[@]}"
fi

# onnxruntime-node's install script would try to download CUDA binaries; the CPU ones ship inside.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

# Starts (or reuses) the test servers and exports IMAGINE_TEST_REDIS_URL / IMAGINE_TEST_POSTGRES_URL.
eval "$(scripts/services.sh)"

npx vitest run
/usr/bin/python3 -m pytest -q training/tests
