#!/usr/bin/env python3
"""Turns the DeepLoc FASTA files (header `>ACCESSION Location-M|S|U [test]`) into the gzip CSVs in data/deeploc/.

Usage: python3 scripts/deeploc_to_csv.py IN.fasta OUT.csv.gz
Columns: id, sequence, location (10 classes), membrane (M, S or U). Dual-location entries (`Cytoplasm-Nucleus`) are
dropped: they belong to no single class.
"""
import gzip
import sys


def records(path):
    header, chunks = None, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if header is not None:
                    yield header, "".join(chunks)
                header, chunks = line[1:], []
            elif line:
                chunks.append(line)
    if header is not None:
        yield header, "".join(chunks)


def main(source, target):
    kept = dropped = 0
    with gzip.open(target, "wt", newline="") as out:
        out.write("id,sequence,location,membrane\n")
        for header, sequence in records(source):
            accession, label = header.split()[:2]
            location, membrane = label.rsplit("-", 1)
            if "-" in location:
                dropped += 1
                continue
            out.write(f"{accession},{sequence},{location},{membrane}\n")
            kept += 1
    print(f"{target}: {kept} records, {dropped} dual-location dropped")


if __name__ == "__main__":
    main(*sys.argv[1:3])
