#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, then vitest and pytest.
#   - Debian packages through apt-get: PyTorch, NumPy, pytest, onnx and OpenBLAS for training/,
#     Chromium for the web survey's browser test
#   - npm packages from the committed lock file
#   - Redis and PostgreSQL (Debian packages), started on loopback for the vote-store tests and
#     stopped afterwards when this run started them (no system service is started or enabled)
set -euo pipefail
cd "$(dirname "$0")/.."

# libopenblas0-pthread takes over libblas.so.3 (Debian alternatives): torch's float32 matmuls run
# ≈50× faster than on the reference BLAS, which keeps the training tests short.
# chromium: the web survey's real-browser test (playwright-core drives Debian's build, headless).
DEBIAN_PACKAGES=(python3-torch python3-numpy python3-pytest python3-onnx libopenblas0-pthread chromium)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then scripts/apt-install.sh "${missing[@]}"; fi

# onnxruntime-node's install script would try to download CUDA binaries; the CPU ones ship inside.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

# Starts (or reuses) the test servers and exports IMAGINE_TEST_REDIS_URL / IMAGINE_TEST_POSTGRES_URL;
# the ones this run started are stopped when it ends, however it ends.
eval "$(scripts/services.sh)"
if [ -n "${IMAGINE_SERVICES_STARTED:-}" ]; then
  # shellcheck disable=SC2086 # a space-separated list of names
  trap 'scripts/services.sh stop $IMAGINE_SERVICES_STARTED' EXIT
fi

npx vitest run
/usr/bin/python3 -m pytest -q training/tests
