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

--query picks what stands where the description was, to tell the two steps of the lookup apart:
"description" (the task as evaluated), "body" (the needle's body lines verbatim, from the line after
its def) or "line" (one body line that holds a number or a quoted character and occurs once in the
context). A model that scores no better than chance with "body" cannot name a function from its own
code, so no wording of the description can help it.

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


DESCRIPTION = "Function Description:\n"
INSTRUCTION = "Based on the function description"


def query_ids(record, query, tokenizer):
    """The record's prompt ids with the description replaced as --query asks, or None when the
    needle has no body line that the "line" query can use. Only the query segment (corpus
    "tokens": prefix, context, query, postfix) is tokenized anew, so the context's ids are the
    evaluated ones."""
    ids, counts = record["ids"]["prompt"], record["tokens"]
    if query == "description":
        return ids
    start = counts["prefix"] + counts["context"]
    end = start + counts["query"]
    text = tokenizer.decode(ids[start:end])
    if DESCRIPTION not in text or INSTRUCTION not in text:
        raise SystemExit(f"{record['id']}: expected a query segment holding {DESCRIPTION!r} and the instruction")
    context = record["prompt"][: record["prompt"].index(DESCRIPTION)]
    body = record["answers"][0].split("\n")[1:]
    if query == "body":
        replacement = "\n".join(body)
    else:
        unique = [l for l in body if context.count(l + "\n") == 1]
        # A line with a number first, then one with a quoted character.
        marked = [l for l in unique if any(c.isdigit() for c in l)] + [l for l in unique if "'" in l]
        if not marked:
            return None
        replacement = marked[0].strip()
    lead = text[: text.index(DESCRIPTION)]
    text = lead + DESCRIPTION + replacement + "\n\n" + text[text.index(INSTRUCTION) :]
    return ids[:start] + tokenizer.encode(text).ids + ids[end:]


def read_queries(path, tokenizer, query="description"):
    """(prompt ids, completion ids, first name position, position after the name's "(" token)."""
    queries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            record = json.loads(line)
            if record["task"] != "repoqa":
                continue
            completion = record["ids"]["completion"]
            prompt = query_ids(record, query, tokenizer)
            if prompt is None:
                continue
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
    parser.add_argument("--query", choices=["description", "body", "line"], default="description",
                        help="what stands in the description's place, in the held-out and the fine-tuning queries")
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
    held_out = read_queries(args.eval, tokenizer, args.query)
    print(json.dumps({"step": 0, "from_step": meta["step"], "queries": len(held_out),
                      "name_accuracy": name_accuracy(model, held_out, device)}), flush=True)
    if not args.train:
        return
    train = read_queries(args.train, tokenizer, args.query)
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
