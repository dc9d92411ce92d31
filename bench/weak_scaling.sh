#!/usr/bin/env bash
# Weak scaling of data-parallel training, 1 → N ranks: the same per-rank batch and one thread per rank, so N ranks
# train N× the tokens per step. Efficiency = (tokens/s on N ranks) / (N × tokens/s on 1 rank), from the median of the
# logged throughput (training compute only). Usage, from the repository root, after `bioforge data prepare` for the
# configuration's data.dir:  bench/weak_scaling.sh [config] [ranks] [steps]
set -euo pipefail
config="${1:-configs/smiles-llama-small.yaml}"
ranks="${2:-2}"
steps="${3:-60}"
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
out="$(mktemp -d)"
common=(train.steps="$steps" train.threads=1 validation.every=0 checkpoint.every=0 train.log_every=10)
./bioforge train --config "$config" "${common[@]}" train.output_dir="$out/one" >/dev/null
mpirun "${root[@]}" --oversubscribe -np "$ranks" ./bioforge train --config "$config" "${common[@]}" train.output_dir="$out/many" >/dev/null
python3 - "$out" "$ranks" <<'PY'
import json, statistics, sys
out, ranks = sys.argv[1], int(sys.argv[2])
def median(run):
    rates = [json.loads(l)["tokens_per_second"] for l in open(f"{out}/{run}/metrics.jsonl") if '"tokens_per_second"' in l]
    return statistics.median(rates[1:])  # the first window includes warm-up
one, many = median("one"), median("many")
print(json.dumps({"benchmark": "weak_scaling", "ranks": ranks, "tokens_per_second_1": round(one), f"tokens_per_second_{ranks}": round(many),
                  "efficiency": round(many / (ranks * one), 3)}))
PY
