#!/usr/bin/env python3
"""Which σ serves `POST /generate` best: the route's optimization (GenerateRoutes.Config) written as `bioforge optimize`
run files, one per σ × seed molecule × seed × request size, and scored as the route answers: the molecules other than
the seed, those meeting `min_similarity` first, then by the objective; the first `num_molecules` of them.

    /usr/bin/python3 bench/generate_sigma.py --bioforge "dotnet artifacts/cli/BioForge.Cli.dll" --sigmas 120,500,1000 --out DIR

Prints, per σ and request size, the mean over seed molecules and seeds of the 10 answered: their objective (the
geometric mean the optimizer maximizes: QED and a sigmoid of the similarity), their similarity to the seed, how many
meet min_similarity and those ones' QED. Keep run files in step with GenerateRoutes.Config.
"""
import argparse
import csv
import os
import shlex
import subprocess
import sys
from statistics import mean, stdev

from rdkit import Chem  # Debian's python3-rdkit: run with /usr/bin/python3

SEEDS = {  # the route's example and two drugs with room to improve QED at high similarity
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
    "sildenafil": "CCCc1nn(C)c2c(=O)[nH]c(-c3cc(S(=O)(=O)N4CCN(C)CC4)ccc3OCC)nc12",
}
SIZES = {"default": (30, 10), "large": (64, 30)}  # particles, iterations
MIN_SIMILARITY = 0.7


def run_file(out, smiles, seed, sigma, particles, iterations, prior, inception):
    low, high = max(0.0, MIN_SIMILARITY - 0.3), min(1.0, MIN_SIMILARITY + 0.1)
    return f"""seed = {seed}
[prior]
model = "{prior}"
[sampling]
batch_size = {particles}
max_length = 100
[learning]
lr = 5e-4
sigma = {sigma}
replay_size = 50
replay_samples = 5
genetic_offspring = {max(1, particles // 2)}
{f'inception = ["{smiles}"]' if inception else ""}
[diversity_filter]
kind = "none"
[output]
dir = "{out}"
ranked = 10000
[[stages]]
name = "generate"
max_steps = {iterations}
min_steps = 1
aggregate = "geometric"
[[stages.components]]
type = "qed"
name = "QED"
[[stages.components]]
type = "similarity"
name = "similarity"
smiles = ["{smiles}"]
transform = {{ kind = "sigmoid", low = {low}, high = {high} }}
"""


def answer(ranked_csv, seed_smiles, count=10):
    with open(ranked_csv) as f:
        rows = [r for r in csv.DictReader(f) if r["smiles"] != seed_smiles]
    rows.sort(key=lambda r: (-(float(r["similarity"]) >= MIN_SIMILARITY), -float(r["score"]), r["smiles"]))
    return rows[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bioforge", default="./bioforge")
    parser.add_argument("--prior", default="models/smiles-llama-small")
    parser.add_argument("--sigmas", default="120,500,1000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sizes", default="default,large")
    parser.add_argument("--inception", default="yes", help="yes, no or both: the seed molecule starts the replay memory")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    prior = os.path.abspath(args.prior)
    table = []
    for size in args.sizes.split(","):
        particles, iterations = SIZES[size]
        for sigma, inception in [(x, i) for x in args.sigmas.split(",") for i in {"yes": [True], "no": [False], "both": [False, True]}[args.inception]]:
            met, qed_met, objective, similarity = [], [], [], []
            for name, smiles in SEEDS.items():
                canonical = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))  # the route leaves the seed out, canonical
                for seed in range(args.seeds):
                    out = os.path.abspath(os.path.join(args.out, f"{size}-sigma{sigma}{'-inception' if inception else ''}-{name}-seed{seed}"))
                    ranked = os.path.join(out, "ranked.csv")
                    if not os.path.exists(ranked):  # a run stopped half-way leaves one too: delete its directory first
                        os.makedirs(args.out, exist_ok=True)
                        toml = out + ".toml"
                        with open(toml, "w") as f:
                            f.write(run_file(out, smiles, seed, sigma, particles, iterations, prior, inception))
                        subprocess.run(shlex.split(args.bioforge) + ["optimize", "--config", toml, "--threads", "1"],
                                       check=True, stdout=subprocess.DEVNULL)
                    picked = answer(ranked, canonical)
                    good = [float(r["QED"]) for r in picked if float(r["similarity"]) >= MIN_SIMILARITY]
                    met.append(len(good))
                    qed_met.append(mean(good) if good else 0.0)
                    objective.append(mean(float(r["score"]) for r in picked))
                    similarity.append(mean(float(r["similarity"]) for r in picked))
                    print(f"{size} σ {sigma}{' inception' if inception else ''} {name} seed {seed}: objective {objective[-1]:.3f}, similarity {similarity[-1]:.3f}, "
                          f"{len(good)} of 10 meet min_similarity (QED {qed_met[-1]:.3f})", file=sys.stderr)
            table.append((size, sigma, inception, objective, similarity, met, qed_met))
    print(f"| request (particles, iterations) | σ | inception | objective of the 10 | similarity of the 10 | of 10 meeting {MIN_SIMILARITY} | their QED |")
    print("|---|---|---|---|---|---|---|")
    spread = lambda v: f"{mean(v):.3f} ± {stdev(v):.3f}" if len(v) > 1 else f"{mean(v):.3f}"
    for size, sigma, inception, objective, similarity, met, qed_met in table:
        print(f"| {size} {SIZES[size]} | {sigma} | {'the seed' if inception else 'none'} | {spread(objective)} | {spread(similarity)} | {mean(met):.1f} | {spread(qed_met)} |")


if __name__ == "__main__":
    main()
