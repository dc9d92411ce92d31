#!/usr/bin/env bash
# Packs the CLI for a GPU machine that has no .NET (the device sessions' H200): a self-contained publish without the
# CPU LibTorch (the machine's PyTorch brings its CUDA LibTorch), compressed into .device/bioforge.tar.xz (git-ignored;
# name `.device` in the device tool's `carry`; about 38 MB). On the machine, bench/gpu-device.sh runs the symbol check,
# the proofs and the benchmarks in one call of at most 600 s (`bench/gpu-device.sh` with timeout_s 600).
# The tool moves at most 64 MiB in all (the bundle is ~39 MiB, the tracked files ~52 MiB): `scripts/gpu-tree.sh aside`
# moves what the GPU script does not read out of the working tree (22 MiB are left), `scripts/gpu-tree.sh back` after it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$(mktemp -d)"
trap 'rm -rf "$out" .device/bioforge.tar.xz.tmp' EXIT # a failed publish or pack leaves nothing half-written behind
dotnet publish src/BioForge.Cli/BioForge.Cli.csproj -c Release -r linux-x64 --self-contained -o "$out/bioforge" -nologo -v q
# The CPU LibTorch, and what only a debugger needs: the device tool moves at most 64 MiB with the working tree.
rm -f "$out"/bioforge/libtorch* "$out"/bioforge/libc10* "$out"/bioforge/libgomp* \
  "$out"/bioforge/createdump "$out"/bioforge/libmscordaccore.so "$out"/bioforge/libmscordbi.so "$out"/bioforge/*.pdb "$out"/bioforge/*.xml
mkdir -p .device
XZ_OPT=-9e tar -C "$out" -cJf .device/bioforge.tar.xz.tmp bioforge
mv .device/bioforge.tar.xz.tmp .device/bioforge.tar.xz
echo "$(du -h .device/bioforge.tar.xz | cut -f1) .device/bioforge.tar.xz"
