#!/usr/bin/env bash
# Load benchmark of `bioforge serve` on loopback (docs/benchmarks.md, "Inference service"): embeddings throughput and
# latency with dynamic batching vs batch size 1 at the same concurrency; load shedding at twice the capacity; and,
# with SOAK_SECONDS set, a soak run sampling the server's resident memory. Bounded in count and time.
# Usage, from the repository root:  bench/serve_load.sh [requests] [concurrency]   (SOAK_SECONDS=600 adds the soak)
# On another machine: BIOFORGE=path/to/published/BioForge.Cli DEVICE=cuda bench/serve_load.sh (bench/gpu.sh does).
# DTYPE=bf16 bench/serve_load.sh: the same in bfloat16.
set -euo pipefail
bioforge="${BIOFORGE:-./bioforge}"
device="${DEVICE:-auto}"
dtype="${DTYPE:-auto}" # DTYPE=bf16: bfloat16 matrix products (AVX512-BF16 or AMX on recent CPUs; the default on CUDA)
requests="${1:-2000}"
concurrency="${2:-64}"
port=18080
"$bioforge" env >/dev/null # builds the CLI once, outside the timed runs
work="$(mktemp -d)"
# A failed load or a server that never became ready must not leave the server on its port, nor the inputs behind.
trap '[ -n "${server:-}" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
# From UniProt: 1,000 sequences of 50–400 residues (typical embedding requests), and 1,000 peptides of 8–30 residues
# (their first residues; short requests, where a forward pass costs more in fixed overhead than in arithmetic).
python3 - "$work" <<'PY'
import gzip, random, sys
random.seed(0)
proteins, peptides, seq, name = open(sys.argv[1] + "/proteins.fasta", "w"), open(sys.argv[1] + "/peptides.fasta", "w"), [], None
n = 0
for line in gzip.open("data/proteins/uniprot20k.fasta.gz", "rt"):
    if line.startswith(">"):
        s = "".join(seq)
        if name and 50 <= len(s) <= 400 and n < 1000:
            proteins.write(f"{name}\n{s}\n")
            peptides.write(f"{name}\n{s[:random.randint(8, 30)]}\n")
            n += 1
        name, seq = line.strip(), []
    else:
        seq.append(line.strip())
PY

serve() { # serve LABEL ARGS...: starts a server, waits until it is ready
  "$bioforge" serve --models models/esm2-small --device "$device" --dtype "$dtype" --port "$port" "${@:2}" >"/tmp/bioforge-serve-$1.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v1/health/ready" >/dev/null && return 0; sleep 0.2; done
  echo "error: the server did not start (see /tmp/bioforge-serve-$1.log)" >&2; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }
load() { "$bioforge" bench serve --url "http://127.0.0.1:$port" --model esm2-small "$@"; }

for workload in peptides proteins; do
  serve "$workload-batched"
  load --inputs "$work/$workload.fasta" --label "$workload, dynamic batching" --requests "$requests" --concurrency "$concurrency" | tee "$work/$workload-batched.json"
  stop
  serve "$workload-single" --max-batch-items 1
  load --inputs "$work/$workload.fasta" --label "$workload, batch size 1" --requests "$requests" --concurrency "$concurrency"
  stop
done

# Twice the measured capacity for peptides, open loop, against a bounded queue: the excess is shed with 503 at once,
# and accepted requests wait at most about queue-capacity / throughput.
capacity=$(python3 -c "import json; print(json.load(open('$work/peptides-batched.json'))['ok_per_second'])")
rate=$(python3 -c "print(round(2 * $capacity))")
serve overload --queue-capacity 128
load --inputs "$work/peptides.fasta" --label "peptides at 2x capacity ($rate req/s), queue 128" --rate "$rate" --requests $((rate * 20)) --seconds 25
stop

if [ -n "${SOAK_SECONDS:-}" ]; then
  serve soak
  load --inputs "$work/proteins.fasta" --label "soak ${SOAK_SECONDS} s, proteins" --requests 100000000 --concurrency "$concurrency" \
    --seconds "$SOAK_SECONDS" --sample-memory-s 30
  stop
fi
