"""Write the small Parquet files the loader tests read (tests/fixtures/loaders/*.parquet).

They mimic the published files: SCBench-preprocessed sets (`prompts`, `ground_truth`, and
`lang`/`repo`/`func_name` for repoqa), openai/mrcr rows and rajpurkar/squad rows, written with
pyarrow under each compression codec the loaders must read (snappy, zstd, gzip, none).
JSONL fixtures are written by the tests themselves. CI never runs this.

Usage: .venv/bin/python tools/make_loader_fixtures.py [OUT_DIR]   (pyarrow 25)
"""

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/loaders")
OUT.mkdir(parents=True, exist_ok=True)

kv = pa.table({
    "prompts": [
        ["JSON data:\n{\"a1\": \"v1\", \"b2\": \"v2\"}", "Key: \"a1\"\nThe value is:", "Key: \"b2\"\nThe value is:"],
        ["JSON data:\n{\"c3\": \"v3\"}", "Key: \"c3\"\nThe value is:"],
    ],
    "ground_truth": [["v1", "v2"], ["v3"]],
})
pq.write_table(kv, OUT / "scbench_kv.parquet", compression="snappy")

vt = pa.table({
    "prompts": [["VAR X1 = 5\nVAR X2 = X1\n", "Find all variables assigned 5."]],
    "ground_truth": pa.array([[["X1", "X2"]]], type=pa.list_(pa.list_(pa.string()))),
})
pq.write_table(vt, OUT / "scbench_vt_tiny.parquet", compression="zstd")

repoqa = pa.table({
    "prompts": [["def f(a):\n    return a + 1\n\ndef g(b):\n    return b * 2\n",
                 "Find the function that adds one.", "Find the function that doubles."]],
    "ground_truth": [["def f(a):\n    return a + 1\n", "def g(b):\n    return b * 2\n"]],
    "func_name": [["f", "g"]],
    "lang": ["python"],
    "repo": ["demo/repo"],
})
pq.write_table(repoqa, OUT / "scbench_repoqa.parquet", compression="gzip")

messages = [
    {"role": "user", "content": "Write a poem about tapirs."},
    {"role": "assistant", "content": "Tapirs wander."},
    {"role": "user", "content": "Write a poem about frogs."},
    {"role": "assistant", "content": "Frogs leap."},
    {"role": "user", "content": "Prepend k9Xq to the 1st poem about tapirs."},
]
mrcr = pa.table({
    "prompt": [json.dumps(messages), json.dumps(messages[:3])],
    "answer": ["k9XqTapirs wander.", "k9XqFrogs"],
    "random_string_to_prepend": ["k9Xq", "k9Xq"],
    "n_needles": pa.array([2, 4], type=pa.int64()),
    "desired_msg_index": pa.array([1, 1], type=pa.int64()),
    "total_messages": pa.array([5, 3], type=pa.int64()),
    "n_chars": pa.array([120, 80], type=pa.int64()),
})
pq.write_table(mrcr, OUT / "mrcr.parquet", compression="snappy")

squad = pa.table({
    "id": ["q1", "q2", "q3"],
    "title": ["T", "T", "U"],
    "context": ["Arvale was founded by Mira.", "Arvale was founded by Mira.", "Bexton lies north."],
    "question": ["Who founded Arvale?", "What was founded?", "Where is Bexton?"],
    "answers": [
        {"text": ["Mira"], "answer_start": [22]},
        {"text": ["Arvale"], "answer_start": [0]},
        {"text": ["north", "north."], "answer_start": [12, 12]},
    ],
})
pq.write_table(squad, OUT / "squad_train.parquet", compression="none")

whole = (OUT / "scbench_kv.parquet").read_bytes()
(OUT / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
print("wrote", sorted(p.name for p in OUT.glob("*.parquet")))
