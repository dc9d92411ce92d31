// Encodes text (SMILES, protein sequences) with Hugging Face's tokenizers.js from a model directory's tokenizer.json and tokenizer_config.json,
// and prints one JSON line per input: {"ids": [...], "decoded": "..."}.
// Usage: node tokenize.mjs MODEL_DIR TEXT...
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [directory, ...inputs] = process.argv.slice(2);
const read = (name) => JSON.parse(readFileSync(join(directory, name), "utf8"));
const tokenizer = new Tokenizer(read("tokenizer.json"), read("tokenizer_config.json"));
for (const text of inputs) {
  const { ids } = tokenizer.encode(text);
  console.log(JSON.stringify({ ids, decoded: tokenizer.decode(ids, { skip_special_tokens: true }) }));
}
