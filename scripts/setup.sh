#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages BioForge builds against (RDKit and the C++ toolchain for its shim, Open MPI for
# multi-process runs, Chromium and Node.js for the browser tests of the HTML pages, nginx for the scale-out test),
# when missing; then the tests' npm packages (playwright-core, @huggingface/tokenizers, openai; pinned in tests/browser/package-lock.json).
# Runs apt-get as root, or through sudo; otherwise prints the command to run.
set -euo pipefail
packages=(cmake g++ make librdkit-dev rdkit-data libboost-dev libcairo2-dev openmpi-bin libopenmpi-dev chromium nginx)
# Node.js: Debian's (18 on Debian 12: the pinned npm packages must accept it), unless one (e.g. NodeSource's, which
# bundles npm) is already there.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
root="$(cd "$(dirname "$0")/.." && pwd)"
# npm ci records what it installed in node_modules/.package-lock.json: installed again when the pins changed since.
browser_packages() {
  local installed="$root/tests/browser/node_modules/.package-lock.json"
  { [ -f "$installed" ] && [ ! "$root/tests/browser/package-lock.json" -nt "$installed" ]; } \
    || (cd "$root/tests/browser" && npm ci --no-audit --no-fund --silent)
}
# What the build needs of the versions, said before a long build fails on them (Ubuntu 22.04 ships RDKit 2021.09 and
# Node.js 12).
check_versions() {
  local rdkit node
  rdkit="$(dpkg-query -W -f='${Version}' librdkit-dev 2>/dev/null || true)"
  if [ -n "$rdkit" ] && ! dpkg --compare-versions "$rdkit" ge 202209; then
    echo "error: librdkit-dev $rdkit is older than the 2022.09 the RDKit shim needs (Debian 12 ships 2022.09)" >&2
    exit 2
  fi
  node="$(node --version 2>/dev/null || true)"
  node="${node#v}"
  if [ -n "$node" ] && [ "${node%%.*}" -lt 18 ]; then
    echo "error: Node.js $node is older than the 18 the browser tests' packages need (install a newer one, e.g. NodeSource's)" >&2
    exit 2
  fi
}
if [ ${#missing[@]} -eq 0 ]; then check_versions; browser_packages; exit 0; fi

echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null 2>&1; then
  apt=(sudo env DEBIAN_FRONTEND=noninteractive apt-get) # sudo resets the environment: no debconf questions through it either
else
  echo "error: missing packages ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
check_versions
browser_packages
