"""The organism recipe end to end; every step is skipped when its output exists, so rerunning
resumes (training itself resumes from its checkpoint).

    tools/organism/setup.sh                       # once: the recipe's Python dependencies
    .venv/bin/python tools/organism/run.py [--max-minutes M] [--export]

Steps, under --work (default .cache/organism):
1. tokenizer/: a byte-level BPE trained on bootstrap text (make_tokenizer.py). The bootstrap
   text is generated with the test fixture tokenizer on its own training seeds.
2. data/<stage data>.npz for every curriculum stage (stage-<length>, or the stage's "data"
   name): `deno task corpus` on the stage's training seeds (all generated tasks, plus the focus
   tasks again, plus the stage's "extra" blocks), packed by
   prepare_data.py. Seeds are ≥ 1 000 000, so no evaluation sample is ever trained on.
3. train.py through the stages (bfloat16 autocast on the CPU; a GPU when torch has one).
4. With --export: models/<name>/ (train.py --export).
5. With --gates: models/<name>/gates.safetensors from `deno task train-gate` on generated text
   (training seeds of their own), scored on held-out generated text (--heldout).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BOOTSTRAP_SEEDS = "1000000-1000019"
GATE_SEEDS = "1900000-1900002"
GATE_HELDOUT_SEEDS = "1950000"


def deno():
    found = shutil.which("deno")
    return [found] if found else ["npx", "--yes", "deno@2.9.6"]


def corpus(tokenizer, tasks, seeds, lengths, n, out, fmt="jsonl"):
    cmd = deno() + [
        "run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys",
        os.path.join(ROOT, "cli.ts"), "corpus", "--tokenizer", tokenizer, "--tasks", *tasks,
        "--split", "train", "--seeds", seeds, "--lengths", ",".join(map(str, lengths)),
        "-n", str(n), "--skip-unfit", "--format", fmt, "--out", out,
    ] + (["--with-ids"] if fmt == "jsonl" else []) + [
    ]
    subprocess.run(cmd, check=True, cwd=ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=os.path.join(HERE, "recipe.json"))
    parser.add_argument("--work", default=os.path.join(ROOT, ".cache", "organism"))
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--until-stage", type=int, default=None)
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--gates", action="store_true")
    parser.add_argument("--gate-steps", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    recipe = json.load(open(args.recipe))
    py = sys.executable
    work = args.work
    os.makedirs(os.path.join(work, "data"), exist_ok=True)

    tok_dir = os.path.join(work, "tokenizer")
    if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        boot = os.path.join(work, "data", "bootstrap.jsonl")
        if not os.path.exists(boot):
            corpus(os.path.join(ROOT, "tests", "fixtures", "tokenizer"),
                   ["long-context", "code", "math"], BOOTSTRAP_SEEDS, [512, 2048], 10, boot)
        subprocess.run([py, os.path.join(HERE, "make_tokenizer.py"), boot, tok_dir,
                        "--vocab", str(recipe["model"]["vocab_size"])], check=True)

    sys.path.insert(0, HERE)
    from train import stage_data_name

    for stage in recipe["stages"]:
        L = stage["length"]
        name = stage_data_name(stage)
        npz = os.path.join(work, "data", f"{name}.npz")
        if os.path.exists(npz):
            continue
        lo, hi = stage["seeds"]
        blocks = [
            ("all", ["long-context", "code", "math"], f"{lo}-{hi}", 5),
            # The focus tasks again, on the other half of the stage's seed block.
            ("focus", stage.get("focus_tasks", recipe["focus_tasks"]), f"{lo + 50000}-{hi + 50000}", 5),
        ]
        # Extra blocks weight chosen tasks further (e.g. many short math problems per row), at
        # the stage's corpus lengths or their own "lengths" (short lookups packed into long rows).
        for k, extra in enumerate(stage.get("extra", [])):
            elo, ehi = extra["seeds"]
            blocks.append((f"extra{k}", extra["tasks"], f"{elo}-{ehi}", extra.get("n", 5),
                           extra.get("lengths", stage["corpus_lengths"])))
        parts = []
        for part, tasks, seeds, n, *lengths in blocks:
            path = os.path.join(work, "data", f"{name}-{part}.jsonl")
            if not os.path.exists(path):
                corpus(tok_dir, tasks, seeds, lengths[0] if lengths else stage["corpus_lengths"], n, path)
            parts.append(path)
        subprocess.run([py, os.path.join(HERE, "prepare_data.py"), npz, *parts,
                        "--length", str(L), "--eos", "0", "--seed", str(lo)], check=True)

    train = [py, os.path.join(HERE, "train.py"), "--recipe", args.recipe, "--work", work]
    if args.threads:
        train += ["--threads", str(args.threads)]
    model_dir = os.path.join(ROOT, "models", recipe["name"])
    if args.export:
        subprocess.run(train + ["--export", model_dir], check=True)
        return
    if args.gates:
        gate_dir = os.path.join(work, "gates")
        os.makedirs(gate_dir, exist_ok=True)
        texts = []
        for name, seeds in (("train", GATE_SEEDS), ("heldout", GATE_HELDOUT_SEEDS)):
            path = os.path.join(gate_dir, f"{name}.txt")
            if not os.path.exists(path):
                corpus(tok_dir, ["long-context", "code"], seeds, [2048], 1, path, fmt="text")
            texts.append(path)
        subprocess.run(deno() + [
            "run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys",
            os.path.join(ROOT, "cli.ts"), "train-gate", "--model", model_dir,
            "--corpus", texts[0], "--heldout", texts[1],
            "--out", os.path.join(model_dir, "gates.safetensors"),
            "--features", os.path.join(gate_dir, "features"),
            "--checkpoint", os.path.join(gate_dir, "gates.ckpt"),
            "--steps", str(args.gate_steps), "--log-every", "250",
        ] + (["--resume"] if os.path.exists(os.path.join(gate_dir, "gates.ckpt")) else []),
            check=True, cwd=ROOT)
        return
    if args.max_minutes is not None:
        train += ["--max-minutes", str(args.max_minutes)]
    if args.until_stage is not None:
        train += ["--until-stage", str(args.until_stage)]
    subprocess.run(train, check=True)


if __name__ == "__main__":
    main()
