#!/usr/bin/env python3
"""How far two running `bioforge serve` instances' embeddings are apart (e.g. --dtype fp32 against --dtype bf16).

Usage: bench/embedding_agreement.py URL_A URL_B FASTA [model] [n]
Prints one JSON line: cosine similarity (min, mean) and the largest relative L2 difference over the first n records.
Standard library only; loopback URLs such as http://127.0.0.1:18080.
"""
import json
import math
import sys
import urllib.request


def records(path, n):
    out, name, seq = [], None, []
    for line in open(path):
        line = line.strip()
        if line.startswith(">"):
            if name is not None:
                out.append("".join(seq))
            name, seq = line, []
        elif line:
            seq.append(line)
    if name is not None:
        out.append("".join(seq))
    return out[:n]


def embed(url, model, inputs):
    body = json.dumps({"model": model, "input": inputs}).encode()
    request = urllib.request.Request(url + "/v1/embeddings", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return [d["embedding"] for d in json.load(response)["data"]]


def main():
    url_a, url_b, fasta = sys.argv[1:4]
    model = sys.argv[4] if len(sys.argv) > 4 else "esm2-small"
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    inputs = records(fasta, n)
    cosines, relative = [], []
    for start in range(0, len(inputs), 50):
        part = inputs[start:start + 50]
        for a, b in zip(embed(url_a, model, part), embed(url_b, model, part)):
            dot = sum(x * y for x, y in zip(a, b))
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
            cosines.append(dot / (na * nb))
            relative.append(math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b))) / na)
    print(json.dumps({"records": len(inputs), "cosine_min": round(min(cosines), 6), "cosine_mean": round(sum(cosines) / len(cosines), 6),
                      "relative_l2_max": round(max(relative), 6)}))


if __name__ == "__main__":
    main()
