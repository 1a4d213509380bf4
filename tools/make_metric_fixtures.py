"""Compute expected metric scores with the benchmarks' own Python scorers.

Writes tests/fixtures/metrics/metric_cases.json, which tasks/metrics/*_test.ts and
tasks/math/*_test.ts replay. CI never runs this; rerun it by hand when a case is added.

The scorers are imported from source trees of these public repositories (commit in brackets):

  FastKVzip   Janghyun1230/FastKVzip  [7d78b34]  prefill/results/metric.py, repo_qa_utils.py,
                                                 prefill/eval_chunk_mrcr.py, math/evaluation/
  LongBench   THUDM/LongBench         [2e00731]  LongBench/metrics.py (v1 scorers)
  RULER       NVIDIA/RULER            [c3f5e3b]  scripts/eval/synthetic/constants.py, evaluate.py
  rouge       pltrdy/rouge            [c1b90a7]  the `rouge` 1.0.1 package
  fuzzywuzzy  seatgeek/fuzzywuzzy     [af443f9]  fuzz.ratio (0.18)
  w2n         akshaynagpal/w2n        [tag 1.1]  word2number

Each lives under SRC/<name>/ as the repository lays it out (for FastKVzip only math/evaluation,
prefill/results and prefill/eval_chunk_mrcr.py are needed). Python packages from the venv:
nltk 3.10.3, Levenshtein 0.27.5, sympy 1.14.0, regex, numpy, rich.

Not installable offline, so stubbed: tree_sitter_languages (RepoQA then takes the first code
block, as it does when tree-sitter finds no function), jieba (Chinese scorers only),
latex2sympy2 and antlr4 (sympy's parse_latex). Math cases that reach `symbolic_equal` (which
would need those parsers) are detected and left out; tests pin those by hand.

Usage: .venv/bin/python tools/make_metric_fixtures.py SRC [OUT]
"""

import ast
import difflib
import importlib
import json
import math
import sys
import types
from pathlib import Path

SRC = Path(sys.argv[1])
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/metrics/metric_cases.json")

# ------------------------------------------------------------------------------------- stubs
def _latex2sympy(s, *args, **kwargs):
    raise RuntimeError("latex2sympy is not installed")


sys.modules["latex2sympy2"] = types.SimpleNamespace(latex2sympy=_latex2sympy)
sys.modules["jieba"] = types.SimpleNamespace(cut=lambda *a, **k: [])


class _NoParser:
    def parse(self, _bytes):
        raise RuntimeError("tree-sitter is not installed")


class _NoLanguage:
    def query(self, _q):
        return None


sys.modules["tree_sitter_languages"] = types.SimpleNamespace(
    get_parser=lambda lang: _NoParser(), get_language=lambda lang: _NoLanguage()
)

sys.path[:0] = [
    str(SRC / "rouge"),
    str(SRC / "fuzzywuzzy"),
    str(SRC / "w2n"),
    str(SRC / "FastKVzip" / "prefill"),
    str(SRC / "FastKVzip" / "math" / "evaluation"),
]


def load_function(path, name, namespace):
    """Exec one top-level function of a module that cannot be imported whole."""
    tree = ast.parse(Path(path).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


from results import metric as fk_metric  # noqa: E402  FastKVzip prefill/results/metric.py
from results import repo_qa_utils  # noqa: E402
import eval_chunk_mrcr  # noqa: E402
import parser as math_parser  # noqa: E402  FastKVzip math/evaluation/parser.py
import grader as math_grader  # noqa: E402
import Levenshtein  # noqa: E402
from fuzzywuzzy import fuzz  # noqa: E402
from rouge import Rouge  # noqa: E402

lb_spec = importlib.util.spec_from_file_location(
    "longbench_metrics", SRC / "LongBench" / "LongBench" / "metrics.py"
)
lb_metrics = importlib.util.module_from_spec(lb_spec)
lb_spec.loader.exec_module(lb_metrics)

ruler_ns = {}
exec((SRC / "RULER" / "scripts" / "eval" / "synthetic" / "constants.py").read_text(), ruler_ns)
ruler_ns["re"] = __import__("re")
ruler_post = load_function(
    SRC / "RULER" / "scripts" / "eval" / "evaluate.py", "postprocess_pred", ruler_ns
)

assert fuzz.SequenceMatcher.__name__ == "StringMatcher", "python-Levenshtein backend expected"

# ------------------------------------------------------------------------------------- cases
out = {"generated_by": "tools/make_metric_fixtures.py", "scbench": [], "longbench": []}

SCBENCH = [
    ("squad", "The Eiffel Tower.", "eiffel tower"),
    ("squad", "", "x"),
    ("squad", "   \n\t", "x"),
    ("squad", "Three apples</s>", "3 apples"),
    ("squad", "Three apples</s></s>", "3 apples"),
    ("squad", "An apple a day", "the apple"),
    ("squad", "theatre", "the"),
    ("squad", "Paris", "London"),
    ("squad", "It is nine.", "9"),
    ("squad", "It's ninety", "9"),
    ("squad", "one-two", "12"),
    ("squad", "l'an 2000", "an 2000"),
    ("squad", "Café, the Société Générale", "société générale"),
    ("squad", "A-N the end", "an end"),
    ("squad", "threes and fours", "3s"),
    ("scbench_kv", "The value is 8f3a-11-b2.", "8f3a-11-b2"),
    ("scbench_kv", "8f3a11b2", "8f3a-11-b2"),
    ("scbench_prefix_suffix", "prefix-XYZ_suffix", "prefixxyzsuffix"),
    ("scbench_vt", "X1, X2 and X5", "X1, X2, X3"),
    ("scbench_vt", "x1", "X1"),
    ("scbench_mf", "42", "42"),
    ("scbench_mf", "42 ", "42"),
    ("scbench_mf", "42</s>", "42"),
    ("scbench_mf_mid", "The answer: 42", "42"),
    ("scbench_many_shot", "(B) dog", "(B) dog lover"),
    ("scbench_many_shot", "(C)", "(B) cat"),
    ("scbench_many_shot", "The answer is dog lover", "(B) dog lover"),
    ("scbench_many_shot", "B", "(B) dog"),
    ("scbench_summary", "The cat sat on the mat. It was happy.", "A cat sat on a mat. The cat was happy."),
    ("scbench_summary", "...", "A cat."),
    ("scbench_summary", "words words words", "other things entirely"),
    ("scbench_summary_with_needles", "Alice met Bob in Paris. They ate.", "Bob met Alice in Paris."),
    ("scbench_qa_eng", "He went to Paris in 1999", "Paris"),
    ("scbench_qa_eng", "Paris, France", "Paris France Europe"),
    ("scbench_qa_eng", "the the the", "the"),
    ("scbench_choice_eng", "B. The mouse\nBecause it is small", "The mouse"),
    ("scbench_choice_eng", "Because the mouse\nB", "B"),
    ("gsm", "Step 1... The answer is 18.", "Natalia sold...\n#### 18"),
    ("gsm", "the answer is 1800", "#### 18"),
    ("gsm", "The answer is 17", "#### 18"),
    ("gsm", "THE ANSWER IS 5 and the answer is 6", "#### 6"),
]

for dataset, pred, ref in SCBENCH:
    score = fk_metric.evaluate_answer([pred], [ref], dataset, "qa")[0]
    out["scbench"].append({"dataset": dataset, "prediction": pred, "reference": ref,
                           "expected": float(score)})

TREC = ["Abbreviation", "Entity", "Description", "Location", "Numeric", "Numeric Value", "Human"]
LONGBENCH = [
    ("hotpotqa", "The Beatles", ["the beatles"], None),
    ("hotpotqa", "Paul and John", ["John Lennon", "Paul McCartney"], None),
    ("hotpotqa", "", ["x"], None),
    ("narrativeqa", "She leaves the city, the end.", ["She leaves the city", "She goes away"], None),
    ("triviaqa", "\nParis\nExplanation: London", ["Paris"], None),
    ("triviaqa", "London\nParis", ["Paris"], None),
    ("trec", "Type: Location", ["Location"], TREC),
    ("trec", "Numeric and Numeric Value", ["Numeric Value"], TREC),
    ("trec", "Human or Entity", ["Entity"], TREC),
    ("trec", "no class here", ["Entity"], TREC),
    ("trec", "abc", ["abc"], ["ab", "a", "b", "abc"]),
    ("passage_retrieval_en", "Paragraph 12", ["Paragraph 12"], None),
    ("passage_retrieval_en", "Paragraph 3 or Paragraph 12", ["Paragraph 12"], None),
    ("passage_retrieval_en", "None of them", ["Paragraph 12"], None),
    ("passage_retrieval_en", "Paragraph \u0661\u0662", ["Paragraph 12"], None),
    ("passage_count", "There are 7 unique paragraphs, so 7", ["7"], None),
    ("passage_count", "7 or 8", ["7"], None),
    ("lcc", "    return x + 1\n", ["return x + 1"], None),
    ("lcc", "# comment\nfoo()\n", ["foo()"], None),
    ("lcc", "```python\nfoo(bar)\n```", ["foo(baz)"], None),
    ("lcc", "", ["x"], None),
    ("lcc", "x", ["x"], None),
    ("lcc", "\n\n  self.assertEqual(a, b) // check", ["self.assertEqual(a, b)"], None),
    ("repobench-p", "int y = compute(a, b);", ["int x = compute(a, c);"], None),
    ("gov_report", "The agency spent money. It was audited.", ["The agency spent funds. Auditors reviewed it."], None),
    ("gov_report", "", ["x"], None),
    ("samsum", "Amanda baked cookies.\nJerry will bring them.", ["Amanda baked cookies and will bring Jerry some tomorrow."], None),
    ("qmsum", "the the the cat", ["the cat the"], None),
]

LB_FN = {
    "hotpotqa": lb_metrics.qa_f1_score, "narrativeqa": lb_metrics.qa_f1_score,
    "triviaqa": lb_metrics.qa_f1_score, "trec": lb_metrics.classification_score,
    "passage_retrieval_en": lb_metrics.retrieval_score, "passage_count": lb_metrics.count_score,
    "lcc": lb_metrics.code_sim_score, "repobench-p": lb_metrics.code_sim_score,
    "gov_report": lb_metrics.rouge_score, "samsum": lb_metrics.rouge_score,
    "qmsum": lb_metrics.rouge_score,
}
for dataset, pred, answers, classes in LONGBENCH:
    # LongBench/eval.py::scorer
    prediction = pred
    if dataset in ["trec", "triviaqa", "samsum", "lsht"]:
        prediction = prediction.lstrip("\n").split("\n")[0]
    score = 0.0
    for gt in answers:
        score = max(score, LB_FN[dataset](prediction, gt, all_classes=classes))
    case = {"dataset": dataset, "prediction": pred, "answers": answers, "expected": float(score)}
    if classes is not None:
        case["all_classes"] = classes
    if dataset in ["lcc", "repobench-p"]:
        saved = lb_metrics.fuzz.SequenceMatcher
        lb_metrics.fuzz.SequenceMatcher = difflib.SequenceMatcher
        case["expected_difflib"] = float(max(lb_metrics.code_sim_score(pred, gt) for gt in answers))
        lb_metrics.fuzz.SequenceMatcher = saved
    out["longbench"].append(case)

RULER = [
    ("niah_single_1", "The special magic numbers are 123 and 456.", ["123", "456", "789"]),
    ("niah_multikey_3", "UUID ABC-def-1", ["abc-DEF-1"]),
    ("niah_single_2", "12\x0034", ["1234"]),
    ("niah_single_2", "  \x01 1234 \x02 ", ["1234"]),
    ("vt", "", ["VAR"]),
    ("cwe", "apple Banana cherry", ["banana", "apple", "durian", "cherry"]),
    ("qa_1", "the answer is Paris", ["London", "paris"]),
    ("qa_2", "Berlin", ["London", "Paris"]),
]
out["ruler"] = []
for task, pred, refs in RULER:
    fn = ruler_ns["string_match_part"] if task.startswith("qa") else ruler_ns["string_match_all"]
    post = ruler_post(pred, {})
    # RULER reports round(100 * mean, 2); for one sample that is the sample's score ×100.
    out["ruler"].append({"task": task, "prediction": pred, "answers": refs,
                         "expected_x100_rounded": fn([post], [refs])})

MRCR = [
    ("aZ3kQ", "aZ3kQHello world", "aZ3kQHello world!"),
    ("aZ3kQ", "Hello world", "aZ3kQHello world"),
    ("aZ3kQ", "aZ3kQ", "aZ3kQ"),
    ("p", "p" + "the quick brown fox " * 15, "p" + "the quick brown fox jumps " * 12),
    ("xx", "xx" + "ab" * 150 + "c", "xx" + "ba" * 150 + "c"),
    ("xx", "xx" + "a" * 300, "xx" + "a" * 250 + "b" * 50),
]
out["mrcr"] = [
    {"prefix": pre, "prediction": resp, "answer": ans,
     "expected": eval_chunk_mrcr.grade(resp, ans, pre)}
    for pre, resp, ans in MRCR
]

PAIRS = [
    ("abcd", "bcde"), ("", ""), ("", "abc"), ("kitten", "sitting"),
    ("private Thread currentThread;", "private volatile Thread currentThread;"),
    ("a" * 300, "a" * 250 + "b" * 50), ("ab" * 120 + "x", "x" + "ba" * 120),
    ("héllo wörld 🙂", "hello world 🙂!"),
    ("x" * 199 + "y", "y" + "x" * 199),
]
out["difflib_ratio"] = [[a, b, difflib.SequenceMatcher(None, a, b).ratio()] for a, b in PAIRS]
out["levenshtein_ratio"] = [[a, b, Levenshtein.ratio(a, b)] for a, b in PAIRS]
tie_a = "a" * 199 + "b" * 1
tie_b = "a" * 199 + "c" * 1
out["fuzz_ratio"] = [[a, b, fuzz.ratio(a, b)] for a, b in PAIRS + [(tie_a, tie_b), ("abc", "abd"), ("ab", "abcdef")]]

BLEU = [
    ("def f ( x ) : return x", "def f ( x ) : return x"),
    ("def f ( x ) : return x", "def f ( y ) : return y"),
    ("a", "a"),
    ("a b", "a c"),
    ("a b c d e f", "f e d c b a"),
    ("one two three four five six seven", "one two three"),
    ("x", "y"),
    ("the cat is on the mat", "the the the the the the the"),
]
out["bleu"] = [
    [ref, hyp, repo_qa_utils.compute_function_similarity(hyp, ref)] for ref, hyp in BLEU
]

NEEDLES = {
    "gold_fn": "def gold_fn(a, b):\n    total = a + b\n    if total > 10:\n        return total * 2\n    return total - 1\n",
    "other_fn": "def other_fn(items):\n    out = []\n    for item in items:\n        out.append(item.strip())\n    return out\n",
    "third_fn": "def third_fn(x):\n    return x ** 2 + 3 * x + 7\n",
}
REPOQA = [
    "```python\n" + NEEDLES["gold_fn"] + "```",
    "Here it is:\n```python\n" + NEEDLES["other_fn"] + "```\nDone.",
    "```python\n" + NEEDLES["gold_fn"].replace("total", "s") + "```",
    "```python\n" + NEEDLES["gold_fn"].replace("return total - 1", "return total - 2") + "```",
    NEEDLES["gold_fn"],
    "```\n" + NEEDLES["gold_fn"] + "```\n```python\n" + NEEDLES["third_fn"] + "```",
    "I do not know.",
    "```python\n" + NEEDLES["gold_fn"] + "```</s>",
]
out["repoqa"] = {"needles": [{"name": k, "code": v} for k, v in NEEDLES.items()], "cases": []}
for pred in REPOQA:
    refs = {"lang": "python", "repo": "demo/repo", "func_name": list(NEEDLES),
            "ground_truth": list(NEEDLES.values())}
    score = fk_metric.repoqa_score([pred], refs)
    sanitized = repo_qa_utils.sanitize_output(pred[:-4] if pred.endswith("</s>") else pred, "python")
    out["repoqa"]["cases"].append({"prediction": pred, "gold": "gold_fn", "expected": float(score),
                                   "sanitized": sanitized})

ROUGE = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("a b c. d e f.", "a c. f e d."),
    ("one.two . three", "two three one"),
    ("x y x y", "y x y x"),
    ("  spaced   out.   words ", "spaced words out"),
]
rouge = Rouge()
out["rouge_l"] = [
    [p, r, rouge.get_scores([p], [r], avg=True)["rouge-l"]["f"]] for p, r in ROUGE
]

STRIP = [
    "\\dfrac{1}{2}", "\\frac12", "\\frac1{72}", "3/4", "-3/4", "03/4", "\\sqrt3", "5\\text{ cm}",
    "\\text{(B)}", "50\\%", "90^\\circ", "90^{\\circ}", "\\$5.00", "x=3", "k = 7", "10 inches",
    "12 sq m", "five", "one hundred and two", "two point five", "x one", "1,000", "0.50",
    "2.0x", "\\left( 1, 2 \\right)", "\\infty", "inf", "\\{1, 2\\}", "j+1", "\\begin{array}{cc} 1 & 2 \\end{array}",
    "a", "t", "3 m", "3 ms", ".5", "\\mbox{ m}5", "\\mathbf{v}", "\\emptyset", "(-\\infty,\\infty)",
    "4 \\text{ apples}", "7.", "  2  ", "\\neq 3", "\\dfrac{\\sqrt{3}}{2}", "1/\\sqrt2",
]
out["strip_string"] = [[s, math_parser.strip_string(s)] for s in STRIP]

EXTRACT = [
    "So the total is \\boxed{\\frac{1}{2}}.",
    "We get \\boxed{x^{2}} and finally \\boxed{\\{1,2\\}}",
    "boxed 5$ done",
    "ends with boxed",
    "The answer is 42 apples.",
    "the final answer is: 3.5",
    "Total: 1,234 and then 5.6",
    "no numbers",
    "answer is \\boxed{\\dfrac{3}{4}\n}",
    "The final answer is $\\frac{1}{3}$. I hope it is correct.",
    "\\boxed{unclosed {1}",
]
out["extract_answer"] = [[s, math_parser.extract_answer(s, "aime24")] for s in EXTRACT]

MATH = [
    ("... The answer is 18.", "18"),
    ("\\boxed{18}", "18"),
    ("\\boxed{18.0}", "18"),
    ("\\boxed{1,000}", "1000"),
    ("\\boxed{50\\%}", "0.5"),
    ("\\boxed{\\$5}", "5"),
    ("\\boxed{90^\\circ}", "90"),
    ("\\boxed{5\\text{ cm}}", "5"),
    ("\\boxed{x=3}", "3"),
    ("\\boxed{\\frac{1}{2}}", "\\frac12"),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}"),
    ("the final answer is 7", "7"),
    ("no numbers here", "5"),
    ("</s>", "5"),
    ("Answer 3.5 and 4</s> junk 9", "4"),
    ("\\boxed{five}", "5"),
    ("\\boxed{2}", "2.0001"),
    ("\\boxed{2}", "2.001"),
    ("\\boxed{(1, 2)}", "(1,2)"),
    ("\\boxed{[1, 2]}", "(1, 2)"),
    ("\\boxed{10 inches}", "10"),
    ("\\boxed{12}<|im_end|>garbage \\boxed{13}", "12"),
    ("\\boxed{x+1}", "1+x"),
    ("\\boxed{2x}", "x*2"),
    ("\\boxed{y = 2x + 1}", "y=1+2*x"),
    ("\\boxed{0.333}", "1/3"),
    ("\\boxed{B}", "B"),
    ("\\boxed{(B)}", "B"),
    ("I think C", "C"),
    ("\\boxed{-7}", "-7"),
    ("\\boxed{7}", "-7"),
    ("\\boxed{1.5e3}", "1500"),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}"),
]
symbolic_calls = []
_symbolic_equal = math_grader.symbolic_equal


def _recording_symbolic_equal(a, b):
    symbolic_calls.append((a, b))
    return _symbolic_equal(a, b)


# Without antlr4 (sympy's parse_latex) and latex2sympy2, symbolic_equal would decide with
# parse_expr alone, which reads LaTeX and even "x^2" differently; keep only the cases that are
# decided before it. The symbolic cases are pinned by hand in tasks/math/equal_test.ts.
math_grader.symbolic_equal = _recording_symbolic_equal
out["math"] = []
for output, ref in MATH:
    code = output
    for stop in ["</s>", "<|im_end|>", "<|endoftext|>", "\n题目："]:
        if stop in code:
            code = code.split(stop)[0].strip()
    pred = math_parser.run_execute(None, code, "cot", "aime24")[0]
    _, gt = math_parser.parse_ground_truth({"answer": ref}, "aime24")
    if gt in ["A", "B", "C", "D", "E"] and pred not in ["A", "B", "C", "D", "E"]:
        pred = math_parser.choice_answer_clean(code[0])
    symbolic_calls.clear()
    verdict = math_grader.math_equal(pred, gt)
    if symbolic_calls:
        print(f"skipped (reaches symbolic_equal): {output!r} vs {ref!r}", file=sys.stderr)
        continue
    out["math"].append({"output": output, "reference": ref, "prediction": pred, "gt": gt,
                        "expected": bool(verdict)})

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
print(f"wrote {OUT}: " + ", ".join(f"{k} {len(v) if isinstance(v, list) else len(v['cases'])}"
                                   for k, v in out.items() if k != "generated_by"))
