#!/usr/bin/env bash
# Load benchmark of /v1/completions (docs/benchmarks.md, "Generation service"): open-loop request rates, each request
# asking for n = 1–16 samples, against servers in the same run — continuous (iteration-level) batching,
# request-level static batching (ended rows leave the computation), padded static batching (ended rows computed to the
# batch's end, as Hugging Face's generate) and batch size 1 — reporting generated tokens/s, requests/s, time to first token and
# p50/p99 latency as JSON lines. Bounded in count and time.
# Usage, from the repository root:  bench/completions_load.sh [rates] [requests-per-rate] [seconds-per-rate]
#   e.g. bench/completions_load.sh "1 2 4" 60 30
# MODEL=models/smiles-llama-small (default) or any decoder checkpoint directory; MAX_RUNNING=64 (slots per model);
# MAX_TOKENS=0 (until the end token); MODES="continuous static padded single"; PORT=18090; WARMUP_S=0: seconds of load at the
# first (lowest) rate sent to each new server before its measured runs and not reported (a CUDA process runs slowly at
# first); KV_CACHE_MB: the servers' key/value cache (default: a tenth of the device's free memory).
# On another machine: BIOFORGE=path/to/published/BioForge.Cli DEVICE=cuda bench/completions_load.sh (bench/gpu.sh does).
set -euo pipefail
bioforge="${BIOFORGE:-./bioforge}"
device="${DEVICE:-auto}"
dtype="${DTYPE:-auto}"
rates="${1:-1 2 4}"
requests="${2:-60}"
seconds="${3:-30}"
model_dir="${MODEL:-models/smiles-llama-small}"
model="$(basename "$model_dir")"
modes="${MODES:-continuous static padded single}"
port="${PORT:-18090}"
[ -n "${BIOFORGE:-}" ] || "$bioforge" env >/dev/null # builds the CLI once, outside the timed runs

# curl where the machine has it (the GPU machine's image may not), else Python's standard library.
ready() {
  local url="http://127.0.0.1:$port/v1/health/ready"
  if command -v curl >/dev/null; then curl -sf "$url" >/dev/null; else python3 -c "import urllib.request as u; u.urlopen('$url', timeout=1)" 2>/dev/null; fi
}
serve() { # serve MODE: starts a server in that decoding mode, waits until it is ready (or has died)
  "$bioforge" serve --models "$model_dir" --device "$device" --dtype "$dtype" --port "$port" --decode-batching "$1" \
    --max-running "${MAX_RUNNING:-64}" --request-timeout-s 600 ${KV_CACHE_MB:+--kv-cache-mb "$KV_CACHE_MB"} >"/tmp/bioforge-completions-$1.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do
    ready && return 0
    kill -0 "$server" 2>/dev/null || { echo "error: the $1 server exited at start:" >&2; tail -5 "/tmp/bioforge-completions-$1.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "error: the server did not start (see /tmp/bioforge-completions-$1.log)" >&2; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }
trap 'kill "${server:-}" 2>/dev/null || true' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo unknown) $(hostname) model=$model device=$device rates=[$rates] requests=$requests"
for mode in $modes; do
  serve "$mode"
  if [ "${WARMUP_S:-0}" != 0 ]; then
    "$bioforge" bench completions --url "http://127.0.0.1:$port" --model "$model" --rate "${rates%% *}" --requests "$requests" \
      --seconds "$WARMUP_S" --max-tokens "${MAX_TOKENS:-0}" --label warm-up >/dev/null
  fi
  for rate in $rates; do
    "$bioforge" bench completions --url "http://127.0.0.1:$port" --model "$model" --rate "$rate" --requests "$requests" \
      --seconds "$seconds" --max-tokens "${MAX_TOKENS:-0}" --label "$mode, $rate req/s"
  done
  stop
done
