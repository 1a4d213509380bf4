"""How often the organism names the right function in repoqa, without generating: the share of
queries whose whole function name (the answer's tokens from the name to its "(") is the argmax at
every position, teacher-forced. Optionally after a short fine-tune on repoqa queries, to see
whether the choice is learnt (the model card's repoqa notes).

    deno task corpus --tasks repoqa --model models/organism-qwen3-10m --seeds 2500000-2500799 \\
        -n 2 --lengths 448,512,640 --with-ids --skip-unfit --out train.jsonl
    deno task corpus --tasks repoqa --model models/organism-qwen3-10m --split eval \\
        --seeds 900000-900049 -n 1 --lengths 512,640 --with-ids --out eval.jsonl
    python tools/organism/repoqa_probe.py --recipe tools/organism/recipe-gpu.json \\
        --parts .cache/organism-gpu/parts --eval eval.jsonl [--train train.jsonl --steps 400]

The answer is "```python\\ndef <name>(…": the name starts at its fifth token. The fine-tune's loss
is the completion's mean cross-entropy plus the name tokens' mean, so the choice of function
weighs as much as the copying of its body.
"""

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import Qwen3ForCausalLM

from train import model_config, read_parts

NAME_START = 4  # " ```", "python", "\n", "def"


def read_queries(path, tokenizer):
    """(prompt ids, completion ids, first name position, position after the name's "(" token)."""
    queries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            record = json.loads(line)
            if record["task"] != "repoqa":
                continue
            prompt, completion = record["ids"]["prompt"], record["ids"]["completion"]
            ends = [i for i in range(NAME_START, len(completion)) if "(" in tokenizer.id_to_token(completion[i])]
            if tokenizer.id_to_token(completion[NAME_START - 1]) != "def" or not ends:
                raise SystemExit(f"{path}:{n}: expected a repoqa answer starting ```python\\ndef <name>(")
            queries.append((prompt, completion, len(prompt) + NAME_START, len(prompt) + ends[0] + 1))
    return queries


def batch(queries):
    """Token ids [B, L] and, per position predicting the next token, the completion and name masks."""
    length = max(len(p) + len(c) for p, c, _, _ in queries)
    ids = torch.zeros(len(queries), length, dtype=torch.long)
    answer = torch.zeros(len(queries), length - 1, dtype=torch.bool)
    name = torch.zeros(len(queries), length - 1, dtype=torch.bool)
    for i, (p, c, start, end) in enumerate(queries):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        answer[i, len(p) - 1 : len(p) + len(c) - 1] = True
        name[i, start - 1 : end - 1] = True
    return ids, answer, name


def logits_of(model, ids):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=ids.device.type == "cpu"):
        return model(input_ids=ids[:, :-1]).logits.float()


@torch.no_grad()
def name_accuracy(model, queries, device, batch_size=16):
    model.eval()
    hits = 0
    for i in range(0, len(queries), batch_size):
        ids, _, name = batch(queries[i : i + batch_size])
        ids, name = ids.to(device), name.to(device)
        right = (logits_of(model, ids).argmax(-1) == ids[:, 1:]) | ~name
        hits += int(right.all(-1).sum())
    model.train()
    return hits / len(queries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--parts", required=True, help="weights as train.py --save-parts wrote them")
    parser.add_argument("--tokenizer", default="models/organism-qwen3-10m/tokenizer.json")
    parser.add_argument("--eval", required=True, help="held-out repoqa records (corpus --with-ids)")
    parser.add_argument("--train", help="repoqa records to fine-tune on")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--every", type=int, default=100, help="measure every this many steps")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    recipe = json.load(open(args.recipe))
    model = Qwen3ForCausalLM(model_config(recipe))
    meta, weights = read_parts(args.parts)
    model.load_state_dict(weights)
    model.to(device)
    tokenizer = Tokenizer.from_file(args.tokenizer)
    held_out = read_queries(args.eval, tokenizer)
    print(json.dumps({"step": 0, "from_step": meta["step"], "queries": len(held_out),
                      "name_accuracy": name_accuracy(model, held_out, device)}), flush=True)
    if not args.train:
        return
    train = read_queries(args.train, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(0)
    started = time.time()
    for step in range(1, args.steps + 1):
        ids, answer, name = (t.to(device) for t in batch(rng.sample(train, args.batch)))
        ce = F.cross_entropy(logits_of(model, ids).transpose(1, 2), ids[:, 1:], reduction="none")
        loss = (ce * answer).sum() / answer.sum() + (ce * name).sum() / name.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            print(json.dumps({"step": step, "minutes": round((time.time() - started) / 60, 1),
                              "name_loss": round(float((ce.detach() * name).sum() / name.sum()), 4),
                              "name_accuracy": name_accuracy(model, held_out, device)}), flush=True)


if __name__ == "__main__":
    main()
