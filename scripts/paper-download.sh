#!/usr/bin/env bash
# Resumable, verified download for scripts/paper.sh (sourced there; run alone for one file):
#
#   scripts/paper-download.sh URL DEST        # LAION_SHA256=… to pin the content
#
# DEST.part grows across runs (curl --continue-at, and retried within a run on any error);
# DEST appears only once its size equals the server's Content-Length and, when LAION_SHA256 is
# set, its SHA-256 matches. PAPER_RETRY_DELAY (seconds, default 5) spaces the retries.

if ! declare -F die >/dev/null; then
  die() { echo "paper.sh: $*" >&2; exit 1; }
fi

# download URL DEST: resumable (curl --continue-at), size checked against Content-Length, sha256
# against LAION_SHA256 when given; DEST appears only once verified.
download() {
  local url=$1 dest=$2 expected have
  expected=$(curl -fsSLI "$url" | tr -d '\r' | awk 'tolower($1) == "content-length:" { n = $2 } END { print n }')
  [[ -n $expected ]] || die "$url did not state its size (Content-Length); cannot verify a download"
  have=$(stat -c %s "$dest.part" 2>/dev/null || echo 0)
  if ((have < expected)); then
    ((have > 0)) && echo "resuming $dest at $have of $expected bytes"
    curl -fL --retry 10 --retry-delay "${PAPER_RETRY_DELAY:-5}" --retry-all-errors --continue-at - -o "$dest.part" "$url" ||
      die "download of $url stopped; rerun to resume"
  fi
  have=$(stat -c %s "$dest.part")
  if ((have != expected)); then
    rm -f "$dest.part"
    die "$url: got $have bytes, the server states $expected; removed, rerun to fetch again"
  fi
  if [[ -n ${LAION_SHA256:-} ]]; then
    echo "$LAION_SHA256  $dest.part" | sha256sum --check --quiet - ||
      { rm -f "$dest.part"; die "$url does not match LAION_SHA256; removed"; }
  fi
  mv "$dest.part" "$dest"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  [[ $# -eq 2 ]] || die "usage: scripts/paper-download.sh URL DEST"
  download "$1" "$2"
fi
