#!/usr/bin/env bash
# All-reduce bandwidth of BioForge's MPI backend next to Open MPI's own (bench/allreduce_peer.c), same sizes, same
# timing. Usage: bench/allreduce.sh [ranks]   (run from the repository root; builds the peer with mpicc)
set -euo pipefail
ranks="${1:-2}"
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
peer="$(mktemp -d)/allreduce_peer"
mpicc -O2 -o "$peer" bench/allreduce_peer.c
./bioforge env >/dev/null # builds the CLI once, outside the timed runs
mpirun "${root[@]}" --oversubscribe -np "$ranks" "$peer"
mpirun "${root[@]}" --oversubscribe -np "$ranks" ./bioforge dist bench --sizes 8K,1M,16M,64M --repeats 20 --warmup 3
