"""Where a model's repoqa answers come from: each full-cache answer of a sweep, sorted into one of
five kinds against the function that was asked for (the gold) and the functions of its context.

    deno task corpus --tasks repoqa --model models/organism-qwen3-10m --split eval --seeds 0 \\
        -n 25 --lengths 2048 --out repoqa-eval.jsonl
    python3 tools/organism/repoqa_answers.py runs/organism-eval/rows.csv repoqa-eval.jsonl

The corpus command must make the sweep's samples (same split, seeds, count and length); every
answer's reference is checked against the record it is paired with. The kinds, first match wins:

1. the gold function, verbatim (what the task's metric rewards);
2. another function of the context, verbatim (the wrong function retrieved);
3. the gold's body up to identifiers, its constants equal, and no function of the context: the
   described behaviour written anew under other names;
4. another context function's body up to identifiers;
5. none of these.

Also counted: answers whose function name is defined in the context. "Up to identifiers" maps
every name that is not a Python keyword or a common builtin or method to one placeholder, and
keeps numbers and quoted strings. Standard library only.
"""

import argparse
import collections
import csv
import json
import keyword
import re

COMMON = {
    "len", "range", "sum", "max", "min", "abs", "int", "str", "list", "dict", "set", "sorted",
    "reversed", "enumerate", "zip", "round", "get", "items", "keys", "values", "append", "add",
    "pop", "lower", "upper", "split", "join", "strip", "replace", "count", "index", "isdigit",
    "isalpha", "startswith", "endswith",
}
KEPT = set(keyword.kwlist) | COMMON
TOKEN = re.compile(r"'[^']*'|\b\d+\b|\b[A-Za-z_]\w*\b")
KINDS = [
    "the gold function, verbatim",
    "another context function, verbatim",
    "the gold's body up to identifiers, not in the context",
    "another context function's body up to identifiers",
    "none of these",
]


def body_shape(code):
    """The body (lines after the def) with identifiers replaced, whitespace collapsed."""
    body = "\n".join(code.strip().split("\n")[1:])
    keep = lambda m: m.group(0) if m.group(0)[0] in "'0123456789" or m.group(0) in KEPT else "X"
    return " ".join(TOKEN.sub(keep, body).split())


def context_functions(context):
    """Every top-level function of the context, by name (a function ends at a blank line)."""
    return {m.group(1): m.group(0).strip() for m in re.finditer(r"^def (\w+)\(.*?(?=\n\n|\Z)", context, re.S | re.M)}


def answer_code(prediction):
    """The code of the answer's first code block (the whole answer when it has none)."""
    m = re.search(r"```(?:python)?\n(.*?)(```|$)", prediction, re.S)
    return (m.group(1) if m else prediction).strip()


def kind_of(answer, gold, functions):
    if answer == gold:
        return 0
    if answer in functions.values():
        return 1
    shape = body_shape(answer)
    if shape == body_shape(gold):
        return 2
    if any(shape == body_shape(f) for f in functions.values()):
        return 3
    return 4


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", help="a sweep's rows.csv")
    parser.add_argument("corpus", help="the corpus JSONL of the same repoqa samples")
    parser.add_argument("--method", default="full", help="the rows' method (default: full)")
    args = parser.parse_args()

    records = collections.defaultdict(list)
    with open(args.corpus, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            records[record["id"]].append(record)
    counts = collections.Counter()
    named = total = 0
    with open(args.rows, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["task"] != "repoqa" or row["method"] != args.method or float(row["budget"]) != 1:
                continue
            queries = records.get(row["sample_id"], [])
            index = int(row["query_index"])
            if index >= len(queries) or json.loads(row["reference"])[0] != queries[index]["answers"][0]:
                raise SystemExit(f"{args.corpus}: no record for {row['sample_id']} query {index} with that row's reference")
            record = queries[index]
            context = record["prompt"][: record["prompt"].index("Function Description:")]
            functions = context_functions(context)
            answer = answer_code(row["prediction"])
            name = re.search(r"def (\w+)", answer)
            named += name is not None and name.group(1) in functions
            counts[kind_of(answer, record["answers"][0].strip(), functions)] += 1
            total += 1
    if total == 0:
        raise SystemExit(f"{args.rows}: no repoqa rows of method {args.method} at kept ratio 1")
    print(f"{total} answers; the function name is defined in the context in {named}")
    for i, kind in enumerate(KINDS):
        print(f"{i + 1}. {kind}: {counts[i]} ({100 * counts[i] / total:.0f} %)")


if __name__ == "__main__":
    main()
