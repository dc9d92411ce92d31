#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu-bundle.sh packed .device/bioforge.tar.xz here:
# unpacks the CLI, points it at PyTorch's CUDA LibTorch, and runs bench/gpu.sh (results under $OUT).
set -euo pipefail
work="$(mktemp -d)"
tar -C "$work" -xJf .device/bioforge.tar.xz
export BIOFORGE="$work/bioforge/BioForge.Cli"
BIOFORGE_LIBTORCH="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export BIOFORGE_LIBTORCH
export OUT="${OUT:-gpu-results}"
bench/gpu.sh
