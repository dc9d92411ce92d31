#!/usr/bin/env python3
"""Mixed-traffic soak of a running `bioforge serve` (issue 15: resident memory stays under a ceiling).

Drives every kind of model work at once for --seconds: protein embeddings, fill-mask with each_position on long
proteins, contacts, score-variants, SMILES embeddings, /v1/molecule/props batches, MolMIM /generate and streamed
/v1/completions; samples the server's resident memory (VmRSS of --pid) every --sample-s seconds. Prints one JSON
line per sample and a summary line; exit 1 when --ceiling-mib is given and any sample passes it.
Standard library only. Usage (repository root, server already running):
  bench/serve_soak.py --url http://127.0.0.1:18090 --pid PID --seconds 1800 --ceiling-mib 3072
"""
import argparse, gzip, json, random, threading, time, urllib.error, urllib.request
from collections import Counter

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--pid", type=int, required=True)
parser.add_argument("--seconds", type=float, default=1800)
parser.add_argument("--sample-s", type=float, default=30)
parser.add_argument("--ceiling-mib", type=float)
parser.add_argument("--protein-model", default="esm2-small")
parser.add_argument("--smiles-model", default="smiles-llama-small")
parser.add_argument("--clients", default="", help="override client counts: kind=n,… (kinds: see `work` below)")
parser.add_argument("--long-residues", default="600-1000", help="length range of the each_position and contacts proteins")
args = parser.parse_args()

random.seed(0)
proteins, seq = [], []
for line in gzip.open("data/proteins/uniprot20k.fasta.gz", "rt"):
    if line.startswith(">"):
        if seq: proteins.append("".join(seq))
        seq = []
    else:
        seq.append(line.strip())
proteins = [p for p in proteins if set(p) <= set("ACDEFGHIKLMNPQRSTVWY")]
short = [p for p in proteins if 50 <= len(p) <= 400][:2000]
low, high = map(int, args.long_residues.split("-"))
long = [p for p in proteins if low <= len(p) <= high][:200]
smiles = [l.split()[0] for l in gzip.open("data/zinc250k/train.smi.gz", "rt") if l.strip()][:5000]

statuses, lock, deadline = Counter(), threading.Lock(), time.time() + args.seconds

def post(route, body, timeout=120):
    request = urllib.request.Request(args.url + route, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as e:
        text = e.read()
        status = e.code
        if status == 500: print(json.dumps({"route": route, "status": 500, "body": text[:500].decode(errors="replace")}), flush=True)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        status = type(e).__name__
    with lock:
        statuses[(route, status)] += 1
    if status == 503: time.sleep(0.5)

def mutations(p):
    out = []
    for _ in range(random.randint(8, 64)):
        i = random.randrange(len(p))
        out.append(f"{p[i]}{i + 1}{random.choice([a for a in 'ACDEFGHIKLMNPQRSTVWY' if a != p[i]])}")
    return out

work = {
    "embed-protein": lambda: post("/v1/embeddings", {"model": args.protein_model, "input": random.sample(short, random.randint(1, 8))}),
    "each-position": lambda: post("/v1/protein/fill-mask", {"model": args.protein_model, "sequence": random.choice(long), "each_position": True}),
    "contacts": lambda: post("/v1/protein/contacts", {"model": args.protein_model, "sequence": random.choice(long)}),
    "variants": lambda: (lambda p: post("/v1/protein/score-variants", {"model": args.protein_model, "sequence": p, "mutations": mutations(p)}))(random.choice(short)),
    "embed-smiles": lambda: post("/v1/embeddings", {"model": args.smiles_model, "input": random.sample(smiles, random.randint(1, 32))}),
    "props": lambda: post("/v1/molecule/props", {"smiles": random.sample(smiles, 64)}),
    "generate": lambda: post("/generate", {"smi": random.choice(smiles), "num_molecules": 5, "property_name": "QED", "min_similarity": 0.3, "iterations": 3, "particles": 20}),
    "completions": lambda: post("/v1/completions", {"model": args.smiles_model, "n": random.randint(1, 16), "stream": True}),
}
clients = {"embed-protein": 6, "each-position": 1, "contacts": 1, "variants": 1, "embed-smiles": 2, "props": 1, "generate": 1, "completions": 3}
for item in filter(None, args.clients.split(",")):
    kind, n = item.split("=")
    if kind not in work: raise SystemExit(f"--clients: unknown kind {kind!r} (one of {', '.join(work)})")
    clients[kind] = int(n)

def client(kind):
    while time.time() < deadline:
        work[kind]()

def rss_mib():
    try:
        with open(f"/proc/{args.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
    except FileNotFoundError:
        # The server is gone (a crash): that ends the soak, as a failure.
        print(json.dumps({"t_s": round(time.time() - start), "server_gone": True, "statuses": {f"{r} {s}": n for (r, s), n in statuses.items()}}), flush=True)
        raise SystemExit(2)
    return float("nan")

threads = [threading.Thread(target=client, args=(k,), daemon=True) for k, n in clients.items() for _ in range(n)]
start = time.time()
for t in threads: t.start()
samples = []
while time.time() < deadline:
    time.sleep(min(args.sample_s, max(0.0, deadline - time.time())))
    samples.append(rss_mib())
    with lock: answered = sum(statuses.values())
    print(json.dumps({"t_s": round(time.time() - start), "rss_mib": round(samples[-1]), "requests": answered}), flush=True)
for t in threads: t.join(timeout=180)
time.sleep(15)
idle = rss_mib()  # what the server keeps once the load has stopped
by_route = {}
for (route, status), n in sorted(statuses.items(), key=str):
    by_route.setdefault(route, {})[str(status)] = n
summary = {"seconds": round(time.time() - start), "requests": sum(statuses.values()), "statuses": by_route,
           "rss_mib_max": round(max(samples)), "rss_mib_last": round(samples[-1]),
           "rss_mib_second_half_max": round(max(samples[len(samples) // 2:])), "rss_mib_idle_after": round(idle), "ceiling_mib": args.ceiling_mib}
print(json.dumps(summary), flush=True)
raise SystemExit(1 if args.ceiling_mib and max(samples) > args.ceiling_mib else 0)
