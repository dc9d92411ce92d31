#!/usr/bin/python3
"""Cold-split affinity runs against the baseline a chemist would try first, over several runs.

For each `dti train ... data.split=cold_target|cold_drug` run directory: the model's test MSE and concordance index
(from its test_predictions.csv) beside a baseline's — each drug's mean pKd over the training pairs (cold_target: a new
target gets the drug's usual affinity) or each target's mean (cold_drug) — then mean ± sd over the runs of each
split and family identity (run_config.json's data.target_identity). Training pairs are every measured Davis pair
outside the test fold. Usage:
  /usr/bin/python3 bench/dti_cold_baseline.py RUN_DIR... [--data data/davis]
Needs numpy (a bench script, not part of BioForge).
"""
import csv, gzip, json, math, os, statistics, sys
import numpy as np


def concordance(truth, predicted):
    """DeepDTA's CI: pairs with different truth, ordered alike by the prediction; tied predictions count one half."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    concordant = pairs = 0.0
    for start in range(0, len(truth), 512):
        t, p = truth[start:start + 512, None], predicted[start:start + 512, None]
        higher = t > truth[None, :]
        pairs += higher.sum()
        concordant += (higher & (p > predicted[None, :])).sum() + 0.5 * (higher & (p == predicted[None, :])).sum()
    return concordant / pairs


def davis_pkd(directory):
    ligands = list(json.load(open(os.path.join(directory, "ligands_can.txt"))))
    proteins = list(json.load(open(os.path.join(directory, "proteins.txt"))))
    path = os.path.join(directory, "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt.gz")
    with gzip.open(path, "rt") as f:
        rows = [[float(v) for v in line.split()] for line in f if line.strip()]
    return {(ligands[i], proteins[j]): -math.log10(kd / 1e9) for i, row in enumerate(rows) for j, kd in enumerate(row) if not math.isnan(kd)}


def main():
    args = sys.argv[1:]
    data = "data/davis"
    if "--data" in args:
        k = args.index("--data")
        data = args[k + 1]
        del args[k:k + 2]
    pkd = davis_pkd(data)
    groups = {}
    print("run\tsplit\tidentity\ttest pairs\tmodel MSE\tmodel CI\tbaseline MSE\tbaseline CI")
    for run in args:
        config = json.load(open(os.path.join(run, "run_config.json")))
        split = config["data"]["split"]
        identity = config["data"].get("target_identity") if split == "cold_target" else None
        with open(os.path.join(run, "test_predictions.csv")) as f:
            test = [(r["drug"], r["target"], float(r["affinity"]), float(r["predicted"])) for r in csv.DictReader(f)]
        held = {(d, t) for d, t, _, _ in test}
        key = 0 if split == "cold_target" else 1  # the baseline averages over the side that was seen in training
        sums = {}
        for pair, value in pkd.items():
            if pair not in held:
                s = sums.setdefault(pair[key], [0.0, 0])
                s[0] += value
                s[1] += 1
        overall = statistics.fmean(v for p, v in pkd.items() if p not in held)
        truth = [a for _, _, a, _ in test]
        model = [p for _, _, _, p in test]
        baseline = [sums[(d, t)[key]][0] / sums[(d, t)[key]][1] if (d, t)[key] in sums else overall for d, t, _, _ in test]
        row = (np.mean((np.array(truth) - model) ** 2), concordance(truth, model),
               np.mean((np.array(truth) - baseline) ** 2), concordance(truth, baseline))
        groups.setdefault((split, identity), []).append(row)
        print(f"{run}\t{split}\t{identity}\t{len(test)}\t" + "\t".join(f"{v:.3f}" for v in row))
    for (split, identity), rows in groups.items():
        if len(rows) > 1:
            spread = [f"{statistics.fmean(c):.3f} ± {statistics.stdev(c):.3f}" for c in zip(*rows)]
            print(f"{split} {identity}: {len(rows)} runs: model MSE {spread[0]}, CI {spread[1]}; baseline MSE {spread[2]}, CI {spread[3]}")


if __name__ == "__main__":
    main()
