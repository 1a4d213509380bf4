"""The organism recipe end to end; every step is skipped when its output exists, so rerunning
resumes (training itself resumes from its checkpoint).

    tools/organism/setup.sh                       # once: the recipe's Python dependencies
    .venv/bin/python tools/organism/run.py [--recipe R] [--max-minutes M] [--export]

Recipes: recipe.json (the 5M model, on 2 CPU cores) and recipe-gpu.json (the shipped 10M
model, 15 minutes on one H100). On a GPU machine without npm, build the data elsewhere with
--data-only, or carry a Deno binary and the corpus bundle (ORGANISM_CORPUS_BUNDLE, see
corpus_main.ts) and let --jobs processes generate it there.

Steps, under --work (default .cache/organism for recipe.json, .cache/organism-<x> for
recipe-<x>.json):
1. tokenizer/: a byte-level BPE trained on bootstrap text (make_tokenizer.py). The bootstrap
   text is generated with the test fixture tokenizer on its own training seeds.
2. data/<stage data>.npz for every curriculum stage (stage-<length>, or the stage's "data"
   name): `deno task corpus` on the stage's training seeds (all generated tasks, plus the focus
   tasks again, plus the stage's "extra" blocks), packed by
   prepare_data.py. Seeds are ≥ 1 000 000, so no evaluation sample is ever trained on.
3. train.py through the stages (bfloat16 autocast on the CPU; a GPU when torch has one).
4. With --export: models/<name>/ (train.py --export).
5. With --gates: models/<name>/gates.safetensors from `deno task train-gate` on generated text
   (training seeds of their own): long-context and code samples at 2048 tokens, and math word
   problems with their worked answers (without them the gates kept 25 % of gsm_synth at kept
   0.5, with them 80 %). Scored on held-out generated text (--heldout).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BOOTSTRAP_SEEDS = "1000000-1000019"
GATE_SEEDS = "1900000-1900002"
# Five problems per math task and seed: 200 problems, a third of the gates' training text.
GATE_MATH_SEEDS = "1900000-1900019"
GATE_HELDOUT_SEEDS = "1950000"


def deno():
    found = shutil.which("deno")
    return [found] if found else ["npx", "--yes", "deno@2.9.6"]


# The corpus command as a single-file bundle (`deno bundle tools/organism/corpus_main.ts`), for
# machines with a Deno binary but no npm registry (e.g. a GPU machine lent without network).
CORPUS_BUNDLE = os.environ.get("ORGANISM_CORPUS_BUNDLE")


def corpus(tokenizer, tasks, seeds, lengths, n, out, fmt="jsonl"):
    entry = ["--no-config", CORPUS_BUNDLE] if CORPUS_BUNDLE else [os.path.join(ROOT, "cli.ts"), "corpus"]
    cmd = deno() + [
        "run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys",
        *entry, "--tokenizer", tokenizer, "--tasks", *tasks,
        "--split", "train", "--seeds", seeds, "--lengths", ",".join(map(str, lengths)),
        "-n", str(n), "--skip-unfit", "--format", fmt, "--out", out,
    ] + (["--with-ids"] if fmt == "jsonl" else [])
    # The corpus command writes beside the target and renames, so an interrupted run leaves
    # no partial block behind and the next run regenerates it.
    subprocess.run(cmd, check=True, cwd=ROOT)


def default_work(recipe_path):
    """.cache/organism for recipe.json, .cache/organism-<x> for recipe-<x>.json: recipes of
    different models never share a checkpoint."""
    stem = os.path.splitext(os.path.basename(recipe_path))[0]
    suffix = "" if stem == "recipe" else "-" + stem.removeprefix("recipe-")
    return os.path.join(ROOT, ".cache", "organism" + suffix)


def seed_chunks(lo, hi, chunks):
    """Split seeds lo…hi into at most `chunks` contiguous ranges of near-equal size, each with
    the file-name suffix of its range ("" when there is one range, so old data keeps its name)."""
    count = min(chunks, hi - lo + 1)
    if count <= 1:
        return [(lo, hi, "")]
    bounds = [lo + (hi - lo + 1) * i // count for i in range(count + 1)]
    return [(a, b - 1, f".{a}-{b - 1}") for a, b in zip(bounds, bounds[1:])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=os.path.join(HERE, "recipe.json"))
    parser.add_argument("--work", default=None, help="default: one folder per recipe (default_work)")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--until-stage", type=int, default=None)
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--gates", action="store_true")
    parser.add_argument("--gate-steps", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="corpus blocks generated side by side")
    parser.add_argument("--data-only", action="store_true", help="build the stages' data and stop")
    parser.add_argument("--data-stage", type=int, default=None,
                        help="build only this stage's data (0-based), e.g. a stage added after the others were trained elsewhere")
    args = parser.parse_args()
    recipe = json.load(open(args.recipe))
    py = sys.executable
    work = args.work or default_work(args.recipe)
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

    for index, stage in enumerate(recipe["stages"]):
        if args.export or args.gates:
            break  # neither needs the training data (which may live on the machine that trained)
        if args.data_stage is not None and index != args.data_stage:
            continue
        L = stage["length"]
        name = stage_data_name(stage)
        npz = os.path.join(work, "data", f"{name}.npz")
        if os.path.exists(npz):
            continue
        lo, hi = stage["seeds"]
        lengths = stage["corpus_lengths"]
        blocks = [
            ("all", ["long-context", "code", "math"], lo, hi, 5, lengths),
            # The focus tasks again, on the other half of the stage's seed block.
            ("focus", stage.get("focus_tasks", recipe["focus_tasks"]), lo + 50000, hi + 50000, 5, lengths),
        ]
        # Extra blocks weight chosen tasks further (e.g. many short math problems per row), at
        # the stage's corpus lengths or their own "lengths" (short lookups packed into long rows).
        for k, extra in enumerate(stage.get("extra", [])):
            elo, ehi = extra["seeds"]
            blocks.append((f"extra{k}", extra["tasks"], elo, ehi, extra.get("n", 5), extra.get("lengths", lengths)))
        parts, missing = [], []
        for part, tasks, blo, bhi, n, block_lengths in blocks:
            for clo, chi, suffix in seed_chunks(blo, bhi, recipe.get("data_chunks", 1)):
                path = os.path.join(work, "data", f"{name}-{part}{suffix}.jsonl")
                if not os.path.exists(path):
                    missing.append((tasks, f"{clo}-{chi}", block_lengths, n, path))
                parts.append(path)
        # Each block (or chunk of a block's seeds, when the recipe asks for "data_chunks") is
        # one `deno task corpus` process writing its own file atomically, so they run side by
        # side, one per core asked for.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for done in [pool.submit(corpus, tok_dir, *block) for block in missing]:
                done.result()
        subprocess.run([py, os.path.join(HERE, "prepare_data.py"), npz, *parts,
                        "--length", str(L), "--eos", "0", "--seed", str(lo)], check=True)

    if args.data_only:
        return
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
        for name, suites, seeds, n in (
            ("train", ["long-context", "code"], GATE_SEEDS, 1),
            ("train-math", ["math"], GATE_MATH_SEEDS, 5),
            ("heldout", ["long-context", "code"], GATE_HELDOUT_SEEDS, 1),
        ):
            path = os.path.join(gate_dir, f"{name}.txt")
            if not os.path.exists(path):
                corpus(tok_dir, suites, seeds, [2048], n, path, fmt="text")
            texts.append(path)
        subprocess.run(deno() + [
            "run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys",
            os.path.join(ROOT, "cli.ts"), "train-gate", "--model", model_dir,
            "--corpus", texts[0], texts[1], "--heldout", texts[2],
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
