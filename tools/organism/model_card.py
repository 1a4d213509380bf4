"""Write models/<name>/MODEL_CARD.md from what the recipe produced and evictbench measured.

    .venv/bin/python tools/organism/model_card.py [--eval runs/organism-eval]
        [--compare runs/organism-compare] [--compare-decode runs/organism-compare-decode]

Reads the recipe, the training state and log (<work>/ckpt/state.pt, <work>/train_log.jsonl),
the data files' row counts, the gate file's metadata (train-gate's validation and held-out
figures) and the cells.csv of the sweeps (tools/organism/eval.jsonc, compare.jsonc and
compare_decode.jsonc).
Every number in the card comes from those files.
"""

import argparse
import csv
import glob
import json
import os
import struct
import sys
from collections import defaultdict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import default_work  # noqa: E402
from train import lr_cycles, read_parts, stage_data_name  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The accuracy targets the card checks (full cache, 2048 tokens, evaluation seeds).
TARGETS = {
    "niah_single_1": 0.9, "niah_single_2": 0.9, "niah_single_3": 0.9,
    "niah_multikey_1": 0.9, "niah_multikey_2": 0.9, "niah_multikey_3": 0.9, "kv_retrieval": 0.9,
    "vt": 0.7, "repoqa": 0.7, "gsm_synth": 0.6,
}
COMPARE_METHODS = ["full", "gated", "kvzip", "snapkv", "h2o", "streamingllm"]


def safetensors_metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return header.get("__metadata__", {})


def task_cells(run):
    path = os.path.join(run, "cells.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["scope"] == "task"]


def method_table(w, columns, methods, cell):
    """A markdown table with a row per method and a column per budget: cell(method, budget)."""
    w("| method | " + " | ".join(label for label, _ in columns) + " |")
    w("| ------ | " + " | ".join("---" for _ in columns) + " |")
    for m in methods:
        w(f"| {m} | " + " | ".join(cell(m, b) for _, b in columns) + " |")
    w("")


def pct(x):
    return f"{100 * float(x):.0f} %"


def training_state(work):
    """The trainer's state (<work>/ckpt/state.pt), or, for a model trained on a lent GPU and
    brought back as --save-parts files, <work>/parts (weights and counters)."""
    path = os.path.join(work, "ckpt", "state.pt")
    if os.path.exists(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    meta, weights = read_parts(os.path.join(work, "parts"))
    return dict(meta, model=weights)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=os.path.join(HERE, "recipe.json"))
    parser.add_argument("--work", default=None, help="default: the recipe's work folder (run.py)")
    parser.add_argument("--eval", default=os.path.join(ROOT, "runs", "organism-eval"))
    parser.add_argument("--compare", default=os.path.join(ROOT, "runs", "organism-compare"))
    parser.add_argument("--compare-decode", default=os.path.join(ROOT, "runs", "organism-compare-decode"))
    parser.add_argument("--stage-rows", default="",
                        help="rows per stage (comma-separated) where the stage's data is not here "
                             "(generated and trained on another machine)")
    parser.add_argument("--notes", default=os.path.join(HERE, "card_notes.md"),
                        help="hand-written reading of the tables, appended when it exists")
    args = parser.parse_args()
    recipe = json.load(open(args.recipe))
    args.work = args.work or default_work(args.recipe)
    stage_rows = {i: f"{int(r):,}" for i, r in enumerate(args.stage_rows.split(",")) if r}
    model_dir = os.path.join(ROOT, "models", recipe["name"])
    config = json.load(open(os.path.join(model_dir, "config.json")))
    state = training_state(args.work)
    params = sum(v.numel() for k, v in state["model"].items() if k != "lm_head.weight")
    log = [json.loads(line) for line in open(os.path.join(args.work, "train_log.jsonl"))]
    # A log line names the GPU it was trained on; none means the CPU.
    gpu = next((entry["gpu"] for entry in reversed(log) if "gpu" in entry), None)
    hardware = f"one {gpu}" if gpu else "2 CPU cores"
    total_steps = sum(s["steps"] for s in recipe["stages"])
    files = sorted(os.listdir(model_dir))
    sizes = {f: os.path.getsize(os.path.join(model_dir, f)) for f in files}

    out = []
    w = out.append
    w(f"# {recipe['name']}\n")
    w("The embedded default model of evictbench: a small Qwen3-architecture model trained from scratch "
      "on the task generators' training seeds, so a fresh clone runs sweeps with no download. It is a "
      "model organism for KV-cache eviction research: it is meant to solve the generated long-context, "
      "code and math tasks with the full cache, so that what eviction costs is visible. It knows nothing "
      "outside those distributions.\n")
    w("## Model\n")
    w(f"- Architecture: `{config['model_type']}` (GQA, RoPE θ = {config['rope_parameters']['rope_theta']:g}, "
      f"q/k RMSNorm, tied embeddings), loaded by evictbench like any HF checkpoint.")
    w(f"- {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, MLP {config['intermediate_size']}, "
      f"{config['num_attention_heads']} query / {config['num_key_value_heads']} KV heads of {config['head_dim']}, "
      f"vocabulary {config['vocab_size']}, max positions {config['max_position_embeddings']}.")
    w(f"- Parameters: {params:,} ({recipe.get('export_dtype', 'float32')} weights; evictbench computes in float32).")
    w("- Tokenizer: byte-level BPE trained on generated text (tools/organism/make_tokenizer.py), Qwen2's "
      "pre-tokenizer: single digits, so numbers and identifiers are copied token by token. No BOS; "
      "`<|endoftext|>` (id 0) ends every answer. No chat template: evictbench uses its plain prompt format.")
    w(f"- Files ({sum(sizes.values()) / 1e6:.1f} MB): " + ", ".join(f"`{f}` {sizes[f] / 1e6:.2f} MB" for f in files) + ".\n")

    w("## Training\n")
    recipe_arg = "" if os.path.basename(args.recipe) == "recipe.json" else f" --recipe tools/organism/{os.path.basename(args.recipe)}"
    w(f"Recipe: `tools/organism/{os.path.basename(args.recipe)}` (`setup.sh`, then "
      f"`.venv/bin/python tools/organism/run.py{recipe_arg}`, then the same with `--export` and "
      "`--gates`). It is resumable: every step skips what exists, and training resumes from its "
      "checkpoint, so it can be spread over several runs.\n")
    w("| stage | row length | batch | steps | corpus lengths | training seeds | rows | notes |")
    w("| ----- | ---------- | ----- | ----- | -------------- | -------------- | ---- | ----- |")
    for i, s in enumerate(recipe["stages"]):
        npz = os.path.join(args.work, "data", stage_data_name(s) + ".npz")
        rows = f"{len(np.load(npz)['tokens']):,}" if os.path.exists(npz) else stage_rows.get(i, "?")
        notes = []
        if "focus_tasks" in s:
            notes.append("focus tasks: " + ", ".join(s["focus_tasks"]))
        for k, extra in enumerate(s.get("extra", [])):
            # One file per block, or one per chunk of its seeds ("data_chunks").
            files = glob.glob(os.path.join(args.work, "data", f"{stage_data_name(s)}-extra{k}.jsonl")) + \
                glob.glob(os.path.join(args.work, "data", f"{stage_data_name(s)}-extra{k}.*-*.jsonl"))
            seeds = f"seeds {extra['seeds'][0]}–{extra['seeds'][1]}"
            if files:
                count = f"{sum(1 for f in files for _ in open(f)):,} "
            else:  # the data was made elsewhere: say how it was drawn
                count, seeds = "", f"{extra.get('n', 5)} per task, seed and length; {seeds}"
            at = f" at {', '.join(map(str, extra['lengths']))} tokens" if "lengths" in extra else ""
            notes.append(f"+ {count}{', '.join(extra['tasks'])} samples{at} ({seeds})")
        if "restart_lr" in s:
            notes.append(f"new cosine cycle from lr {s['restart_lr']} ({s.get('restart_warmup', 100)} warm-up steps)")
        w(f"| {i} | {s['length']} | {s['batch']} | {s['steps']} | {', '.join(map(str, s['corpus_lengths']))} "
          f"| {s['seeds'][0]}–{s['seeds'][1]} (+50 000 for the focus tasks) | {rows} | {'; '.join(notes)} |")
    o = recipe["optimizer"]
    w("")
    w(f"- Data: `deno task corpus --with-ids` on every generated task (long-context, code, math), plus "
      f"the focus tasks again ({', '.join(recipe['focus_tasks'])}). All seeds are training seeds "
      f"(≥ 1 000 000); evaluation uses seeds below 1 000 000, so no evaluation sample was trained on.")
    w("- Loss: next-token cross-entropy, the mean over prompt tokens plus the mean over answer tokens "
      "(so answers weigh as much as the text around them).")
    cycles = lr_cycles(recipe["stages"], o)
    w(f"- AdamW (β = {tuple(o['betas'])}, weight decay {o['weight_decay']}), gradient clip {o['clip']}; "
      f"bfloat16 autocast on {hardware} (torch {state.get('torch', torch.__version__)}"
      + (", torch.compile" if gpu and recipe.get("gpu", {}).get("compile") else "") + "). Learning rate: "
      + "; ".join(f"steps {c['start']}–{c['end']}: {c['warmup']} warm-up steps to {c['peak']}, cosine to {o['min_lr']}"
                  for c in cycles) + ".")
    w(f"- Steps: {state['step']} of {total_steps}; tokens seen: {state['tokens_seen']:,}; "
      f"training time: {state['seconds'] / 60:.0f} min on {hardware}.")
    if log:
        last = log[-1]
        w(f"- Last logged window (step {last['step']}): prompt loss {last['text']:.3f}, answer loss "
          f"{last['answer']:.3f}, answer-token accuracy {pct(last['answer_acc'])}.\n")

    w("## Evaluation (evictbench, full cache, evaluation seeds)\n")
    w("`deno task sweep tools/organism/eval.jsonc`: each task's own metric, 2048-token prompts "
      "(gsm_synth is short and needs chain-of-thought decoding). 95 % bootstrap intervals.\n")
    cells = task_cells(args.eval)
    if not cells:
        w("_Not measured yet._\n")
    else:
        full = {c["task"]: c for c in cells if c["method"] == "full"}
        streaming = {c["task"]: c for c in cells if c["method"] == "streamingllm" and float(c["budget"]) == 0.1}
        w("| task | suite | n | full cache | 95 % CI | target | met | streamingllm at 0.1 |")
        w("| ---- | ----- | - | ---------- | ------- | ------ | --- | ------------------- |")
        for task, c in sorted(full.items(), key=lambda kv: (kv[1]["suite"], kv[0])):
            target = TARGETS.get(task)
            met = "" if target is None else ("yes" if float(c["score"]) >= target else "no")
            s = streaming.get(task)
            w(f"| {task} | {c['suite']} | {c['n_queries']} | {pct(c['score'])} | "
              f"{pct(c['score_ci_low'])}–{pct(c['score_ci_high'])} | "
              f"{'' if target is None else '≥ ' + pct(target)} | {met} | {'' if s is None else pct(s['score'])} |")
        w("")

    w("## Gates\n")
    gates = os.path.join(model_dir, "gates.safetensors")
    if os.path.exists(gates):
        meta = safetensors_metadata(gates)
        w(f"`gates.safetensors` was trained by `deno task train-gate` (Fast KVzip gates, spec §2) on "
          f"{int(meta.get('train_tokens', 0)):,} tokens of generated text ({meta.get('steps')} steps).")
        w(f"- Validation (every 100th token, spec §2.3): loss {float(meta['validation_loss']):.4f}, "
          f"accuracy at 0.05 {pct(meta['validation_accuracy'])}.")
        if "heldout_accuracy" in meta:
            w(f"- Held-out text ({int(meta['heldout_tokens']):,} tokens from other seeds): accuracy at 0.05 "
              f"{pct(meta['heldout_accuracy'])}; Spearman rank correlation of gate scores with KVzip scores "
              f"{float(meta['heldout_spearman']):.3f} (mean over layers and KV heads).")
            layers = json.loads(meta["heldout_layers"])
            w("")
            w("| layer | accuracy | Spearman (per KV head) |")
            w("| ----- | -------- | ---------------------- |")
            for l in layers:
                w(f"| {l['layer']} | {pct(l['accuracy'])} | {l['spearman']:.3f} "
                  f"({', '.join(f'{r:.2f}' for r in l['spearmanPerHead'])}) |")
        w("")
    else:
        w("_Not trained yet._\n")

    w("## Score vs kept ratio\n")
    w("`deno task sweep tools/organism/compare.jsonc` (query-agnostic: the context is compressed once, "
      "before any question). Mean task score per suite.\n")
    cells = task_cells(args.compare)
    if not cells:
        w("_Not measured yet._\n")
    else:
        by = defaultdict(list)
        for c in cells:
            if c["score"] != "":
                by[(c["suite"], c["method"], float(c["budget"]))].append(float(c["score"]))
        budgets = sorted({float(c["budget"]) for c in cells}, reverse=True)
        for suite in sorted({c["suite"] for c in cells}):
            tasks = sorted({c["task"] for c in cells if c["suite"] == suite})
            w(f"**{suite}** ({', '.join(tasks)})\n")

            def mean_score(m, b, suite=suite):
                v = by.get((suite, m, b)) or (by.get((suite, m, 1.0)) if m == "full" else None)
                return "" if not v else f"{100 * sum(v) / len(v):.0f}"

            method_table(w, [(f"{b:g}", b) for b in budgets], COMPARE_METHODS, mean_score)
    decode_cells = task_cells(args.compare_decode)
    if decode_cells:
        w("## Score vs decode budget (math)\n")
        w("`deno task sweep tools/organism/compare_decode.jsonc` (decode protocol: the prompt is "
          "prefilled whole, then eviction runs during the chain-of-thought decoding, keeping a budget "
          "of entries per layer and KV head). Score, then in brackets the share of the final cache "
          "kept. KVzip scores a prefilled context only, so it has no row.\n")
        by = {(c["method"], c["task"], int(c["budget"])): c for c in decode_cells}
        budgets = sorted({int(c["budget"]) for c in decode_cells if c["method"] != "full"}, reverse=True)
        order = COMPARE_METHODS + ["tova"]
        methods = sorted({c["method"] for c in decode_cells},
                         key=lambda m: order.index(m) if m in order else len(order))
        for task in sorted({c["task"] for c in decode_cells}):
            w(f"**{task}**\n")
            full = next((x for x in decode_cells if x["method"] == "full" and x["task"] == task), None)

            def score_and_kept(m, b, task=task, full=full):
                c = by.get((m, task, b)) or (full if m == "full" else None)
                if c is None or c["score"] == "":
                    return ""
                return f"{100 * float(c['score']):.0f} ({100 * float(c['kept_ratio_achieved']):.0f} %)"

            method_table(w, [(f"{b} entries", b) for b in budgets], methods, score_and_kept)
    if os.path.exists(args.notes):
        out.append(open(args.notes).read().strip() + "\n")
    open(os.path.join(model_dir, "MODEL_CARD.md"), "w").write("\n".join(out).rstrip() + "\n")
    print(f"wrote {os.path.join(model_dir, 'MODEL_CARD.md')}")


if __name__ == "__main__":
    main()
