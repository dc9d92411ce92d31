#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages BioForge builds against (RDKit and the C++ toolchain for its shim, Open MPI for
# multi-process runs), when missing.
# Runs apt-get as root, or through sudo; otherwise prints the command to run.
set -euo pipefail
packages=(cmake g++ make librdkit-dev rdkit-data libboost-dev libcairo2-dev openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null 2>&1; then
  apt=(sudo apt-get)
else
  echo "error: missing packages ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
