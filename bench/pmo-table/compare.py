#!/usr/bin/env python3
"""Side-by-side PMO table of the strategies measured here (one folder per `bench pmo --out`), beside the published
methods: AUC top-10 per task (mean over the seeds each folder has), and sums over the tasks every folder finished.

    python3 bench/pmo-table/compare.py bench/pmo-table/reinvent bench/pmo-table/ahc bench/pmo-table/ahc-ga32

With --paired BASE OTHER: the runs both folders finished, paired by task and seed (the seed fixes the prior's first
samples, so pairs differ by the setting alone plus its chaotic consequences): OTHER − BASE per pair, per task, and
the mean over the pairs with its standard error.

    python3 bench/pmo-table/compare.py --paired bench/pmo-table/ahc-ga32 bench/pmo-table/ahc-ga32-prior2
"""
import csv
import os
import re
import sys
from statistics import mean, stdev


def runs(folder):
    with open(os.path.join(folder, "pmo.csv")) as f:
        return {(row["task"], int(row["seed"])): float(row["auc_top10"]) for row in csv.DictReader(f)}


def paired(base, other):
    a, b = runs(base), runs(other)
    pairs = sorted(set(a) & set(b))
    if not pairs:
        sys.exit(f"no run (task, seed) finished in both {base} and {other}")
    differences = [b[k] - a[k] for k in pairs]
    print(f"| task | seed | {os.path.basename(os.path.normpath(base))} | {os.path.basename(os.path.normpath(other))} | difference |")
    print("|---|---|---|---|---|")
    for (task, seed), d in zip(pairs, differences):
        print(f"| {task} | {seed} | {a[(task, seed)]:.3f} | {b[(task, seed)]:.3f} | {d:+.3f} |")
    n = len(differences)
    sd = stdev(differences) if n > 1 else 0.0
    print(f"\n{n} pairs: mean difference {mean(differences):+.4f} a run (standard error {sd / n ** 0.5:.4f}), "
          f"summed {sum(differences):+.3f}; higher in {sum(d > 0 for d in differences)}, lower in {sum(d < 0 for d in differences)}")
    for task in sorted({t for t, _ in pairs}):
        mine = [d for (t, _), d in zip(pairs, differences) if t == task]
        print(f"  {task}: {mean(mine):+.3f} over {len(mine)} seed(s)")


def results(folder):
    with open(os.path.join(folder, "pmo.csv")) as f:
        rows = list(csv.DictReader(f))
    by_task = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(float(row["auc_top10"]))
    return {task: mean(values) for task, values in by_task.items()}


def published(folders):
    """Published AUCs per task, read from the summaries bench pmo wrote (their last four columns)."""
    methods, table = None, {}
    for folder in folders:
        if not os.path.exists(os.path.join(folder, "summary.md")):
            continue  # a table still being gathered
        with open(os.path.join(folder, "summary.md")) as f:
            for line in f:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if cells[0] == "task":
                    methods = cells[-4:]
                elif len(cells) > 5 and re.fullmatch(r"[a-z0-9_]+", cells[0]):
                    table[cells[0]] = [float(c) for c in cells[-4:]]
    return methods, table


def main(folders):
    names = [os.path.basename(os.path.normpath(f)) for f in folders]
    measured = [results(f) for f in folders]
    methods, pub = published(folders)
    tasks = [t for t in pub if any(t in m for m in measured)]
    print("| task | " + " | ".join(f"{n} (here)" for n in names) + " | " + " | ".join(f"{m} (published)" for m in methods) + " |")
    print("|---|" + "---|" * (len(names) + len(methods)))
    for task in tasks:
        here = [f"{m[task]:.3f}" if task in m else "" for m in measured]
        print(f"| {task} | " + " | ".join(here) + " | " + " | ".join(f"{v:.3f}" for v in pub[task]) + " |")
    common = [t for t in tasks if all(t in m for m in measured)]
    sums = [sum(m[t] for t in common) for m in measured]
    print(f"| **sum over the {len(common)} tasks all have** | " + " | ".join(f"**{s:.3f}**" for s in sums) + " | "
          + " | ".join(f"{sum(pub[t][i] for t in common):.3f}" for i in range(len(methods))) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--paired":
        if len(sys.argv) != 4:
            sys.exit("--paired takes two folders: BASE OTHER\n" + __doc__)
        paired(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1:])
