#!/usr/bin/env bash
# Strong scaling of tensor-parallel training, 1 → N ranks: the same batch per step, every layer split across N ranks
# (--tp N), one thread per rank. Speed-up = (tokens/s with --tp N) / (tokens/s on 1 rank), from the median of the
# logged throughput (training compute only); efficiency = speed-up / N. Usage, from the repository root, after
# `bioforge data prepare` for the configuration's data.dir:  bench/tensor_scaling.sh [config] [ranks] [steps]
set -euo pipefail
config="${1:-configs/smiles-llama-small.yaml}"
ranks="${2:-2}"
steps="${3:-30}"
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
out="$(mktemp -d)"
common=(train.steps="$steps" train.threads=1 validation.every=0 checkpoint.every=0 train.log_every=5)
./bioforge train --config "$config" "${common[@]}" train.output_dir="$out/one" >/dev/null
mpirun "${root[@]}" --oversubscribe -np "$ranks" ./bioforge train --config "$config" --tp "$ranks" "${common[@]}" train.output_dir="$out/split" >/dev/null
python3 - "$out" "$ranks" <<'PY'
import json, statistics, sys
out, ranks = sys.argv[1], int(sys.argv[2])
def median(run):
    rates = [json.loads(l)["tokens_per_second"] for l in open(f"{out}/{run}/metrics.jsonl") if '"tokens_per_second"' in l]
    return statistics.median(rates[1:])  # the first window includes warm-up
one, split = median("one"), median("split")
print(json.dumps({"benchmark": "tensor_scaling", "ranks": ranks, "tokens_per_second_1": round(one), f"tokens_per_second_tp{ranks}": round(split),
                  "speedup": round(split / one, 3), "efficiency": round(split / (ranks * one), 3)}))
PY
