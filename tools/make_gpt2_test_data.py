#!/usr/bin/python3
"""Test data for BioForge's GPT-2 support, beside the shared parity fixture hf/gpt2_tiny (copied unchanged).

Writes into tests/BioForge.Tests/data/hf/:
- gpt2_tiny/tokenizer.json: a ProtGPT2-like byte-level BPE of exactly the fixture's 37 tokens (<|endoftext|> = 0, the
  20 amino acids, space and newline as byte-level characters, 14 merges), in Hugging Face's tokenizer.json layout.
- gpt2_tiny/tokenizer_expected.json: texts and the ids that an independent implementation of GPT-2's byte-level BPE
  (OpenAI's encoder.py algorithm, below: the GPT-2 pre-tokenizer regex, bytes-to-unicode table, merges by rank) gives.
- gpt2_tiny_bin/: the same checkpoint as PyTorch's torch.save writes it (pytorch_model.bin, zip format) with the keys of
  a bare GPT2Model as the original OpenAI conversions store them (no "transformer." prefix) and the attn.bias /
  attn.masked_bias buffers those files hold, plus config.json and the tokenizer as vocab.json + merges.txt.

Needs Debian's python3-regex and python3-torch (1.13). Deterministic: running it again writes the same files.
"""
import json, os, struct
import numpy as np
import regex
import torch

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "BioForge.Tests", "data", "hf")
tiny = os.path.join(root, "gpt2_tiny")
out_bin = os.path.join(root, "gpt2_tiny_bin")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE = bytes_to_unicode()
PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

amino = "ACDEFGHIKLMNPQRSTVWY"
merges = [("L", "L"), ("A", "A"), ("E", "E"), ("G", "G"), ("K", "K"), ("S", "S"), ("M", "K"), ("A", "L"), ("L", "E"),
          ("E", "A"), ("LL", "LL"), ("AL", "A"), (BYTE[ord(" ")], "M"), ("G", "S")]
tokens = ["<|endoftext|>"] + list(amino) + [BYTE[ord(" ")], BYTE[ord("\n")]] + [a + b for a, b in merges]
vocab = {t: i for i, t in enumerate(tokens)}
assert len(vocab) == 37
ranks = {pair: i for i, pair in enumerate(merges)}


def bpe(word):
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((parts[i], parts[i + 1]), 1 << 30), i) for i in range(len(parts) - 1)]
        best = min(pairs)[0]
        if best == 1 << 30:
            break
        first, second = merges[best]
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def encode(text):
    ids = []
    for piece in PATTERN.findall(text):
        ids.extend(vocab[p] for p in bpe("".join(BYTE[b] for b in piece.encode("utf-8"))))
    return ids


def tokenizer_json():
    level = lambda: {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": True}],
        "normalizer": None, "pre_tokenizer": level(), "post_processor": level(), "decoder": level(),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }


texts = ["MKALLLLEAGS", "MKV LLAAA\nGGSGS", "EALEALEALLA", " MKSSKK", "GSGSLLLLLLLLL", "W", "\n\nMK  AL"]


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    result = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        begin, end = info["data_offsets"]
        result[name] = torch.from_numpy(np.frombuffer(data[8 + n + begin:8 + n + end], dtype="<f4").reshape(info["shape"]).copy())
    return result


def main():
    with open(os.path.join(tiny, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(tiny, "tokenizer_expected.json"), "w") as f:
        json.dump([{"text": t, "ids": encode(t)} for t in texts], f, indent=1, ensure_ascii=False)
        f.write("\n")

    os.makedirs(out_bin, exist_ok=True)
    config = json.load(open(os.path.join(tiny, "config.json")))
    n_positions = config["n_positions"]
    state = {}
    for name, value in read_safetensors(os.path.join(tiny, "model.safetensors")).items():
        state[name[len("transformer."):]] = value
    for layer in range(config["n_layer"]):
        state[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(n_positions, n_positions, dtype=torch.uint8)).view(1, 1, n_positions, n_positions)
        state[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(dict(sorted(state.items())), os.path.join(out_bin, "pytorch_model.bin"))
    with open(os.path.join(out_bin, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_bin, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out_bin, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(a + " " + b + "\n" for a, b in merges))


if __name__ == "__main__":
    main()
