#!/usr/bin/env bash
# Every GPU benchmark in one run, for a session lent a GPU machine (no dotnet there): run it from the repository
# root with BIOFORGE pointing at a self-contained `dotnet publish -r linux-x64 --self-contained` of src/BioForge.Cli
# (LibTorch files removed) and BIOFORGE_LIBTORCH at PyTorch's torch/lib. Results go to $OUT (default ./gpu-results),
# one JSON line per benchmark in results.jsonl, logs beside it. Record the numbers in docs/benchmarks.md.
set -uo pipefail
: "${BIOFORGE:?set BIOFORGE to the published BioForge.Cli}"
: "${BIOFORGE_LIBTORCH:?set BIOFORGE_LIBTORCH to the torch/lib folder of PyTorch}"
out="${OUT:-gpu-results}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$BIOFORGE_LIBTORCH:${LD_LIBRARY_PATH:-}"
run() { echo "== $*" | tee -a "$out/log.txt"; "$@" >>"$out/results.jsonl" 2>>"$out/log.txt" || echo "failed: $*" | tee -a "$out/log.txt"; }

"$BIOFORGE" env >"$out/env.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/env.txt" 2>&1
run "$BIOFORGE" bench matmul --size 8192 --repeats 20 --device cuda --dtype bf16
run "$BIOFORGE" bench matmul --size 8192 --repeats 10 --device cuda --dtype fp32
run "$BIOFORGE" bench embed --size 650M --length 512 --batch 64 --steps 10 --warmup 3 --device cuda --dtype bf16
run "$BIOFORGE" bench embed --size 8M --length 512 --batch 256 --steps 10 --warmup 3 --device cuda --dtype bf16

"$BIOFORGE" data prepare --in data/proteins/cath_s40.fasta.gz data/proteins/uniprot20k.fasta.gz --tokenizer esm \
  --out work/proteins >>"$out/log.txt" 2>&1
# ESM-2 650M, masked LM, bf16 mixed precision, length 512 (the goal: >= 75k tokens/s on one H200).
run "$BIOFORGE" bench train --config configs/esm2-650m.yaml --steps 10 --warmup 3 train.device=cuda \
  data.max_length=512 data.tokens_per_batch=65536 train.accumulation=1
run "$BIOFORGE" bench train --config configs/esm2-650m.yaml --steps 10 --warmup 3 train.device=cuda \
  data.max_length=512 data.tokens_per_batch=65536 train.accumulation=1 train.activation_checkpointing=true
run "$BIOFORGE" bench train --config configs/esm2-8m.yaml --steps 20 --warmup 3 train.device=cuda train.precision=bf16-mixed
# NCCL (issue 5): the single-GPU communicator — every collective checked on CUDA tensors, then all-reduce bandwidth.
"$BIOFORGE" dist check --device cuda >>"$out/log.txt" 2>&1 || echo "failed: dist check --device cuda" | tee -a "$out/log.txt"
run "$BIOFORGE" dist bench --device cuda --sizes 8K,1M,64M,1G --repeats 20 --warmup 5
# The inference service on the GPU (issue 7): dynamic batching vs batch size 1, and shedding at twice the capacity.
DEVICE=cuda bench/serve_load.sh 4000 64 >>"$out/results.jsonl" 2>>"$out/log.txt" || echo "failed: bench/serve_load.sh" | tee -a "$out/log.txt"
echo "results in $out/results.jsonl"
