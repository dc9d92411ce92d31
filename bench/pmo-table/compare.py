#!/usr/bin/env python3
"""Side-by-side PMO table of the strategies measured here (one folder per `bench pmo --out`), beside the published
methods: AUC top-10 per task (mean over the seeds each folder has), and sums over the tasks every folder finished.

    python3 bench/pmo-table/compare.py bench/pmo-table/reinvent bench/pmo-table/ahc bench/pmo-table/ahc-ga32
"""
import csv
import os
import re
import sys
from statistics import mean


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
    main(sys.argv[1:])
