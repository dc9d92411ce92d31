#!/usr/bin/env bash
# Makes the working tree small enough for the device tool (at most 64 MiB with the ~39 MiB bundle of
# scripts/gpu-bundle.sh), and puts it back afterwards:
#   scripts/gpu-tree.sh aside   moves the tracked files bench/gpu-device.sh does not read to $ASIDE and prints the MiB
#                               that would travel (tracked and untracked-not-ignored files plus .device)
#   scripts/gpu-tree.sh back    moves them back
# ASIDE defaults to /tmp/bioforge-gpu-aside (outside the tree, so nothing of it travels).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
aside="${ASIDE:-/tmp/bioforge-gpu-aside}"
# What the GPU script reads stays: configs/, data/proteins/, models/{smiles,protein}-llama-small,
# tests/BioForge.Tests/data/{hf,train}.
paths=(models/dti-davis models/esm2-small data/zinc250k data/moses data/deeploc data/kiba data/davis data/moleculenet
  bench/pmo-table src/BioForge/Chem/Data/fpscores.tsv.gz tests/BioForge.Tests/data/chem tests/BioForge.Tests/data/pmo
  tests/BioForge.Tests/data/reinvent4)

travelling() { # tracked files set aside are listed by git but gone: stat skips them (and xargs then exits non-zero)
  local sizes
  sizes="$({ git ls-files -z; git ls-files -z --others --exclude-standard; find .device -type f -print0 2>/dev/null; } |
    xargs -0 stat -c %s 2>/dev/null)" || true
  awk '{ s += $1 } END { printf "%.1f MiB would travel (the limit is 64)\n", s / 1048576 }' <<<"$sizes"
}

case "${1:-}" in
aside)
  [ -e "$aside" ] && { echo "error: $aside exists: run '$0 back' first" >&2; exit 1; }
  # The publish embeds files moved aside here (the SA-score fragments): bundle first.
  [ -f .device/bioforge.tar.xz ] || { echo "error: no .device/bioforge.tar.xz: run scripts/gpu-bundle.sh before '$0 aside'" >&2; exit 1; }
  for p in "${paths[@]}"; do
    [ -e "$p" ] || continue
    mkdir -p "$aside/$(dirname "$p")"
    mv "$p" "$aside/$p"
  done
  travelling
  ;;
back)
  [ -d "$aside" ] || { echo "error: nothing set aside in $aside" >&2; exit 1; }
  for p in "${paths[@]}"; do
    [ -e "$aside/$p" ] || continue
    [ -e "$p" ] && { echo "error: $p exists in the tree and in $aside: left both as they are" >&2; exit 1; }
    mkdir -p "$(dirname "$p")"
    mv "$aside/$p" "$p"
  done
  rm -rf "$aside"
  git status --short | head -5
  ;;
*)
  echo "usage: $0 aside|back" >&2
  exit 2
  ;;
esac
