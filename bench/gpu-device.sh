#!/usr/bin/env bash
# The first thing to run in a session lent a GPU machine, from the repository root, in one device call of at most 600 s
# (pass timeout_s=600 and kind nvidia-h200: the ESM-2 650M training step needs ~109 GB, and the H200 table is the one
# compared against): after scripts/gpu-bundle.sh packed .device/bioforge.tar.xz here, carry `.device`. In order:
#   1. a one-second check that the bundle's libLibTorchSharp.so resolves every symbol against the machine's PyTorch
#      (stops with one message if not: nothing else can work), and `env` maps one libtorch_cpu.so, from PyTorch;
#   2. the open issues' measurements: issue 5's NCCL collectives and all-reduce bandwidth (`dist check|bench --device
#      cuda`), issue 16's generation service under load (continuous against static batching, then batch size 1);
#   3. the rest in order of value (the in-process decoder, the CUDA-vs-CPU embedding proof, a few bf16 training steps,
#      sampling on CUDA, then the ESM-2 benchmarks measured on 2026-12-04 and their controls), each bounded, skipped
#      when the deadline is near.
# Everything is written under $OUT as it goes (flat: the device tool returns 8 files at most): summary.txt (one line per
# step: ok / FAILED / skipped, seconds), results.jsonl (JSON lines as each command prints them, so a call cut short
# keeps what finished), log.txt (every step's standard output and error), env.txt, gpu-memory.csv (nvidia-smi every
# second, with the step names in log.txt's timestamps to attribute the peaks).
# BUDGET_S: seconds for the steps; set it from status's budget_left_s less the machine's start (a few minutes) and the
# copy back, at most 540 inside a 600-s call. STEPS=<regex>: only the steps whose names match.
# Dry run on a machine without a GPU: DEVICE=cpu DRY_RUN=1 BIOFORGE=<built BioForge.Cli> BIOFORGE_LIBTORCH=<a LibTorch
# folder> OUT=<dir> bench/gpu-device.sh (same steps, small sizes, no CUDA).
set -uo pipefail
start=$(date +%s)
budget="${BUDGET_S:-540}" # inside the tool's 600 s, leaving time to copy $OUT back
deadline=$((start + budget))
export OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
device="${DEVICE:-cuda}"
dry="${DRY_RUN:-0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
summary="$OUT/summary.txt"
log="$OUT/log.txt"
note() { echo "$*" | tee -a "$summary"; }
stamp() { echo "== $(date +%s) $*" >>"$log"; }

# step NAME SECONDS COMMAND...: runs with a timeout, never past the deadline. Its standard output goes to log.txt and
# its JSON lines to results.jsonl line by line as they come (a step the device tool cuts off keeps its finished lines).
step() {
  local name="$1" limit="$2"
  shift 2
  [[ "$name" =~ ${STEPS:-.} ]] || return 0
  local left=$((deadline - $(date +%s)))
  if [ "$left" -lt 10 ]; then note "skipped  $name (deadline)"; return 1; fi
  [ "$limit" -gt "$left" ] && limit="$left"
  stamp "$name (limit ${limit}s)"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" 2>>"$log" | tee -a "$work/$name.out" "$log" | grep --line-buffered '^{' >>"$OUT/results.jsonl"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then note "ok       $name $(($(date +%s) - t0))s"; else note "FAILED   $name (exit $rc after $(($(date +%s) - t0))s; log.txt)"; fi
  return "$rc"
}

# --- the CLI and PyTorch's LibTorch
if [ -z "${BIOFORGE:-}" ]; then
  timeout 60 tar -C "$work" -xJf .device/bioforge.tar.xz || { note "FAILED   unpack .device/bioforge.tar.xz (run scripts/gpu-bundle.sh and carry .device)"; exit 1; }
  BIOFORGE="$work/bioforge/BioForge.Cli"
fi
if [ -z "${BIOFORGE_LIBTORCH:-}" ]; then
  BIOFORGE_LIBTORCH="$(timeout 60 python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
fi
export BIOFORGE BIOFORGE_LIBTORCH
export LD_LIBRARY_PATH="$BIOFORGE_LIBTORCH:${LD_LIBRARY_PATH:-}"
bridge="$(dirname "$BIOFORGE")/libLibTorchSharp.so"

# --- 1. the bridge against this PyTorch: every symbol, now (RTLD_NOW), after PyTorch's own libraries are loaded
stamp symbols
if ! timeout 60 python3 - "$bridge" >>"$log" 2>&1 <<'EOF'
import ctypes, os, sys
try:
    import torch  # loads libc10/libtorch_cpu/libtorch_cuda the way PyTorch does
    print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())
except ImportError:
    for name in ("libc10.so", "libtorch_cpu.so", "libtorch.so"):
        ctypes.CDLL(os.path.join(os.environ["BIOFORGE_LIBTORCH"], name), os.RTLD_NOW | os.RTLD_GLOBAL)
ctypes.CDLL(sys.argv[1], os.RTLD_NOW | os.RTLD_GLOBAL)
print("bridge resolves:", sys.argv[1])
EOF
then
  note "FAILED   symbols: $bridge does not resolve against $BIOFORGE_LIBTORCH (the loader's words in log.txt); rebuild TorchSharp's bridge for this LibTorch"
  exit 1
fi
note "ok       symbols"

gpu_mib=0
if command -v nvidia-smi >/dev/null 2>&1; then
  # Bounded: a wedged driver hangs nvidia-smi, and the whole call with it.
  timeout 15 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/env.txt" 2>&1
  gpu_mib="$(timeout 15 nvidia-smi --id=0 --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | tr -dc 0-9)"
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -l 1 >"$OUT/gpu-memory.csv" 2>/dev/null &
  sampler=$!
  trap 'kill "$sampler" 2>/dev/null; rm -rf "$work"' EXIT
fi

# --- 2. proofs
step env 30 "$BIOFORGE" env && cat "$work/env.out" >>"$OUT/env.txt" 2>/dev/null
mapped="$(grep '^mapped:' "$work/env.out" 2>/dev/null | sed 's/^mapped: *//')"
if [ ! -f "$work/env.out" ]; then
  : # env left out by STEPS
elif [ "$mapped" = "$BIOFORGE_LIBTORCH/libtorch_cpu.so" ] || [ "$(readlink -f "$mapped")" = "$(readlink -f "$BIOFORGE_LIBTORCH/libtorch_cpu.so")" ]; then
  note "ok       one libtorch_cpu.so, from $BIOFORGE_LIBTORCH"
else
  note "FAILED   mapped libtorch_cpu.so: '$mapped' (expected $BIOFORGE_LIBTORCH/libtorch_cpu.so only)"
fi


# --- 2. the open issues' measurements
# Issue 5: every collective on CUDA tensors over NCCL (a one-GPU communicator), then its all-reduce bandwidth.
step dist-check 60 "$BIOFORGE" dist check --device "$device"
step dist-bench 60 "$BIOFORGE" dist bench --device "$device" --sizes 8K,1M,64M,1G --repeats 20 --warmup 5

# Issue 16: the generation service under open-loop load, continuous against request-level static batching (the goal:
# >= 3x static's tokens/s at an equal or better p99) in both of its forms: `padded` (the issue's and the papers' baseline:
# a batch runs to its longest sequence) and `static` (ours: an ended sequence leaves the computation), both decoders;
# then batch size 1, the table's third mode, at a
# rate it can serve (a request of n samples takes n decodes). Each server gets a short warm-up at the lowest rate (not
# reported: a fresh CUDA process runs slowly at first), its own port (a server cut at the step's limit drains its
# requests before it lets go of its port) and a fixed key/value cache (no nvidia-smi at start); its log lands in log.txt.
if [ "$dry" = 1 ]; then slots=4; smiles_rates="2"; protein_rates="1"; load_s=4; warm_s=2; else slots=128; smiles_rates="${SMILES_RATES:-16 128}"; protein_rates="${PROTEIN_RATES:-4 24}"; load_s=8; warm_s=3; fi
completions() { # completions NAME SECONDS PORT MODEL RATES [MODES]
  PORT="$3" MODEL="$4" MODES="${6:-continuous static padded}" MAX_RUNNING="$slots" DEVICE="$device" WARMUP_S="$warm_s" KV_CACHE_MB="${KV_CACHE_MB:-8192}" \
    step "$1" "$2" bench/completions_load.sh "$5" 2048 "$load_s"
  pkill -KILL -f "BioForge.Cli serve .*--port $3( |$)" 2>/dev/null # this step's server only (a dry run shares its machine)
  cat /tmp/bioforge-completions-*.log >>"$log" 2>/dev/null
  rm -f /tmp/bioforge-completions-*.log
}
completions load-smiles 200 18091 models/smiles-llama-small "$smiles_rates"
completions load-protein 220 18092 models/protein-llama-small "$protein_rates"
completions load-smiles-single 45 18093 models/smiles-llama-small 1 single
completions load-protein-single 45 18094 models/protein-llama-small 0.25 single

# --- 3. the rest, most valuable first
# The decoder in process (bench decode): a queue of 4 x the slots leaves continuous batching a long tail of few rows;
# padded batches (every row computed to its batch's end, as Hugging Face's generate) are the papers' baseline;
# the -sustained run (16 x the slots) is nearer a saturated server. The rows' grammar verdicts and draws run on the
# intra-op threads (DecodeScheduler.Decide); the -1thread run keeps them on the stepping thread, as on 2026-12-04.
decode() { # decode NAME SECONDS MODEL SEQUENCES REPEATS [VAR=VALUE] [OPTION...]
  local name="$1" limit="$2" model="$3" count="$4" repeats="$5" variable="${6:-}"
  shift $(($# < 6 ? $# : 6))
  step "$name" "$limit" env $variable "$BIOFORGE" bench decode --model "$model" --sequences "$count" --repeats "$repeats" --slots "$slots" --device "$device" "$@"
}
decode bench-decode-smiles 75 models/smiles-llama-small "$((slots * 4))" 2 "" --modes continuous,static,padded
decode bench-decode-protein 110 models/protein-llama-small "$((slots * 4))" 2 "" --modes continuous,static,padded
decode bench-decode-smiles-sustained 60 models/smiles-llama-small "$((slots * 16))" 1

# The cheap proofs of 2026-12-04, again for this build: CUDA embeddings equal CPU ones on the Hugging Face fixture.
fixture=tests/BioForge.Tests/data/hf/esm_tiny
fasta=tests/BioForge.Tests/data/train/cath200.fasta
head -n 40 "$fasta" >"$work/few.fasta"
step embed-cpu 60 "$BIOFORGE" embed --model "$fixture" --in "$work/few.fasta" --out "$work/cpu.npy" --device cpu --dtype fp32
step embed-fp32 60 "$BIOFORGE" embed --model "$fixture" --in "$work/few.fasta" --out "$work/fp32.npy" --device "$device" --dtype fp32
step embed-bf16 60 "$BIOFORGE" embed --model "$fixture" --in "$work/few.fasta" --out "$work/bf16.npy" --device "$device" --dtype bf16
# fp32 on CUDA (TF32 off in LibTorch's default) within 1e-4 relative; bf16 (8 mantissa bits, error grows with depth) within 5e-2.
step embed-agree 30 python3 - "$work" <<'EOF'
import ast, json, math, struct, sys
def load(path):  # .npy version 1 or 2, little-endian float32 or float64, C order: the standard library is enough
    with open(path, "rb") as f:
        assert f.read(6) == b"\x93NUMPY"
        major, _ = f.read(2)
        (length,) = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))
        header = ast.literal_eval(f.read(length).decode("latin1"))
        rows, cols = header["shape"]
        code = {"<f4": "f", "<f8": "d"}[header["descr"]]
        values = struct.unpack(f"<{rows * cols}{code}", f.read())
    return [values[r * cols:(r + 1) * cols] for r in range(rows)]
w = sys.argv[1]
cpu = load(f"{w}/cpu.npy")
failed = []
for name, tol in (("fp32", 1e-4), ("bf16", 5e-2)):
    other = load(f"{w}/{name}.npy")
    rel = max(math.dist(a, b) / math.hypot(*b) for a, b in zip(other, cpu))
    print(json.dumps({"check": f"embed {name} vs cpu", "max_relative_l2": rel, "tolerance": tol, "ok": rel <= tol}))
    if rel > tol:
        failed.append(name)
sys.exit(1 if failed else 0)
EOF

# A few bf16 steps of the SMILES decoder on the device, then molecules sampled from it there (sampling on CUDA).
step prepare-smiles 60 "$BIOFORGE" data prepare --in tests/BioForge.Tests/data/train/zinc2k.smi --tokenizer smiles --out "$work/smiles"
step train-steps 90 "$BIOFORGE" train --config configs/smiles-llama-small.yaml "data.dir=$work/smiles" "train.output_dir=$work/run" \
  train.steps=6 train.log_every=1 "train.device=$device" train.precision=bf16-mixed validation.every=0 checkpoint.every=3
# Sampling on the device, both decoders (the GPU machine's image has no RDKit: SMILES come out unchecked).
step generate 60 "$BIOFORGE" generate --model models/protein-llama-small --n 64 --out "$work/generated.fasta" --device "$device" --seed 3
step generate-smiles 60 "$BIOFORGE" generate --model models/smiles-llama-small --n 64 --out "$work/generated.smi" --device "$device" --seed 3
decode bench-decode-smiles-sustained-1thread 60 models/smiles-llama-small "$((slots * 16))" 1 "" --threads 1

# ESM-2 650M (measured on 2026-12-04: docs/benchmarks.md). 65,536 tokens a step peaked at 108.9 GB there: half on a
# card with less than 100 GB (an H100), with the same tokens per optimizer step through accumulation.
if [ "$dry" = 1 ]; then size=8M; esm=configs/esm2-8m.yaml; tokens=4096; accumulation=1; length=128; batch=8; steps=2; matmul=1024
else size=650M; esm=configs/esm2-650m.yaml; length=512; batch=64; steps=10; matmul=8192
  if [ "${gpu_mib:-0}" -gt 0 ] && [ "$gpu_mib" -lt 100000 ]; then tokens=32768; accumulation=2; else tokens=65536; accumulation=1; fi
fi
step bench-embed 90 "$BIOFORGE" bench embed --size "$size" --length "$length" --batch "$batch" --steps "$steps" --warmup 3 --device "$device" --dtype bf16
step prepare-proteins 60 "$BIOFORGE" data prepare --in data/proteins/cath_s40.fasta.gz data/proteins/uniprot20k.fasta.gz --tokenizer esm --out "$work/proteins"
step bench-train 150 "$BIOFORGE" bench train --config "$esm" --steps "$steps" --warmup 3 "data.dir=$work/proteins" "train.device=$device" \
  "data.max_length=$length" "data.tokens_per_batch=$tokens" "train.accumulation=$accumulation"
step bench-matmul 30 "$BIOFORGE" bench matmul --size "$matmul" --repeats 20 --device "$device" --dtype bf16
step bench-train-checkpointed 120 "$BIOFORGE" bench train --config "$esm" --steps "$steps" --warmup 3 "data.dir=$work/proteins" "train.device=$device" \
  "data.max_length=$length" "data.tokens_per_batch=$tokens" "train.accumulation=$accumulation" train.activation_checkpointing=true
# Controls with PyTorch's own attention order (cuDNN first, which plans every new shape), only where this LibTorch reads
# the switch (older releases spelled it TORCH_CUDNN_SDPA_PREFERRED: the runs would repeat the ones above).
if [ "$dry" != 1 ] && grep -q TORCH_CUDNN_SDPA_DEPRIORITIZED "$BIOFORGE_LIBTORCH/libtorch_cuda.so" 2>/dev/null; then
  decode bench-decode-smiles-cudnn 60 models/smiles-llama-small "$((slots * 4))" 2 TORCH_CUDNN_SDPA_DEPRIORITIZED=0
  step bench-train-cudnn 100 env TORCH_CUDNN_SDPA_DEPRIORITIZED=0 "$BIOFORGE" bench train --config "$esm" --steps "$steps" --warmup 3 "data.dir=$work/proteins" \
    "train.device=$device" "data.max_length=$length" "data.tokens_per_batch=$tokens" "train.accumulation=$accumulation"
else
  note "skipped  -cudnn controls (this LibTorch does not read TORCH_CUDNN_SDPA_DEPRIORITIZED, or a dry run)"
fi
note "done     $(($(date +%s) - start))s of ${budget}s; results in $OUT/results.jsonl"
