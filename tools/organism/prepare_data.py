"""Pack corpus records (from `deno task corpus --with-ids`) into fixed-length training rows.

Each record is its prompt ids, its completion ids and EOS. Records are packed greedily into rows
of `--length` tokens (short records share a row; the rest is EOS padding), in shuffled order.
Next to the tokens, a class per position says what predicting the *next* token there trains:
0 nothing (padding), 1 the prompt (language modelling), 2 the completion (the answer). The
trainer averages the loss of classes 1 and 2 separately, so answers weigh as much as the text.

    python tools/organism/prepare_data.py OUT.npz --length 512 --eos 0 IN.jsonl [IN.jsonl ...]
"""

import argparse
import json
import os
import random

import numpy as np


def read_records(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    record = json.loads(line)
                    ids = record["ids"]
                except (json.JSONDecodeError, KeyError) as error:
                    raise SystemExit(f"{path}:{n}: expected a corpus record with ids ({error})")
                yield record["task"], ids["prompt"], ids["completion"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--eos", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records = list(read_records(args.inputs))
    random.Random(args.seed).shuffle(records)
    L = args.length
    rows, classes = [], []
    row, cls = [], []
    dropped = {}
    kept = {}

    def flush():
        if row:
            pad = L - len(row)
            rows.append(row + [args.eos] * pad)
            classes.append(cls + [0] * pad)

    for task, prompt, completion in records:
        tokens = prompt + completion + [args.eos]
        if len(tokens) > L:
            dropped[task] = dropped.get(task, 0) + 1
            continue
        kept[task] = kept.get(task, 0) + 1
        # Position t predicts token t+1; the record's last token predicts nothing here.
        record_cls = [1] * (len(prompt) - 1) + [2] * (len(completion) + 1) + [0]
        if len(row) + len(tokens) > L:
            flush()
            row, cls = [], []
        row = row + tokens
        cls = cls + record_cls
    flush()

    # uint16 holds any vocabulary up to 65 536 ids at half the bytes of int32.
    tokens = np.asarray(rows, dtype=np.uint16 if max(map(max, rows), default=0) < 65536 else np.int32)
    # Written beside the target and renamed, so an interrupted run leaves no partial file.
    partial = args.out + ".partial.npz"
    np.savez(partial, tokens=tokens, classes=np.asarray(classes, dtype=np.uint8))
    os.replace(partial, args.out)
    print(
        f"{args.out}: {len(rows)} rows × {L} tokens from {sum(kept.values())} records; "
        f"fill {float((np.asarray(classes) > 0).mean()):.2f}; per task {dict(sorted(kept.items()))}"
        + (f"; dropped (longer than a row) {dropped}" if dropped else "")
    )


if __name__ == "__main__":
    main()
