#!/usr/bin/python3
"""How a cold-drug affinity run's error depends on how like the training drugs each held-out drug is.

Reads a `dti train ... data.split=cold_drug` run's test_predictions.csv and the Davis ligands, computes for each held-out
drug its nearest Tanimoto similarity (Morgan radius 2, 2,048 bits, as BioForge's applicability domain) to the drugs
trained on (every Davis ligand not held out), and prints MSE and CI per drug and for the drugs below and above the
domain's threshold (ApplicabilityDomain.SimilarLigand, 0.4). Usage:
  /usr/bin/python3 bench/dti_domain.py RUN_DIR [data/davis]
Needs Debian's python3-rdkit (a bench script, not part of BioForge).
"""
import csv, json, os, sys
from rdkit import Chem, DataStructs
from rdkit.Chem import AllChem

THRESHOLD = 0.4


def concordance(truth, predicted):
    pairs = concordant = 0.0
    for i in range(len(truth)):
        for j in range(len(truth)):
            if truth[i] > truth[j]:
                pairs += 1
                concordant += 1 if predicted[i] > predicted[j] else 0.5 if predicted[i] == predicted[j] else 0
    return concordant / pairs if pairs else float("nan")


def summary(rows):
    truth = [r[0] for r in rows]
    predicted = [r[1] for r in rows]
    mse = sum((t - p) ** 2 for t, p in rows) / len(rows)
    return mse, concordance(truth, predicted)


def main():
    run = sys.argv[1]
    davis = sys.argv[2] if len(sys.argv) > 2 else "data/davis"
    with open(os.path.join(davis, "ligands_can.txt")) as f:
        ligands = json.load(f)
    by_drug = {}
    with open(os.path.join(run, "test_predictions.csv")) as f:
        for row in csv.DictReader(f):
            by_drug.setdefault(row["drug"], []).append((float(row["affinity"]), float(row["predicted"])))
    fingerprint = lambda s: AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=2048)
    trained = [fingerprint(s) for d, s in ligands.items() if d not in by_drug]
    groups = {"below": [], "at or above": []}
    print("drug\tnearest training Tanimoto\tpairs\tMSE\tCI")
    for drug, rows in sorted(by_drug.items(), key=lambda kv: -max(DataStructs.BulkTanimotoSimilarity(fingerprint(ligands[kv[0]]), trained))):
        nearest = max(DataStructs.BulkTanimotoSimilarity(fingerprint(ligands[drug]), trained))
        mse, ci = summary(rows)
        print(f"{drug}\t{nearest:.3f}\t{len(rows)}\t{mse:.3f}\t{ci:.3f}")
        groups["below" if nearest < THRESHOLD else "at or above"].append((drug, rows))
    for name, members in groups.items():
        if members:
            mse, ci = summary([r for _, rows in members for r in rows])
            print(f"{name} {THRESHOLD}: {len(members)} drugs, {sum(len(r) for _, r in members)} pairs, MSE {mse:.3f}, CI {ci:.3f}")


if __name__ == "__main__":
    main()
