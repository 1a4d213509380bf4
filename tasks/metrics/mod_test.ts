import { InputError } from "../../errors.ts";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  fastkvzipMetricName,
  getMetric,
  hasMetric,
  listMetricNames,
  LONGBENCH_METRICS,
  nearMatches,
  registerMetric,
  rulerMetricName,
} from "./mod.ts";
import { normalizeAnswer, normalizeSquadAnswer } from "./normalize.ts";
import { pyFloatRepr, pyRound, pySplit, pyStrip } from "./py_text.ts";

Deno.test("every metric the rules and maps name is registered", () => {
  const names = new Set(listMetricNames());
  for (const d of ["squad", "gsm", "scbench_kv", "scbench_vt", "scbench_mf", "scbench_repoqa"]) {
    assertEquals(names.has(fastkvzipMetricName(d)), true, d);
  }
  for (const name of Object.values(LONGBENCH_METRICS)) assertEquals(names.has(name), true, name);
  for (const name of ["string_match_all", "string_match_part", "mrcr_grade", "math_equal"]) {
    assertEquals(hasMetric(name), true, name);
  }
  assertEquals(listMetricNames().length, 23);
});

Deno.test("unknown names fail with near matches; duplicates and bad names are refused", () => {
  const error = assertThrows(() => getMetric("string_match_al"), InputError, "string_match_all");
  assertEquals(error.message.startsWith('unknown metric "string_match_al"; did you mean'), true);
  assertThrows(() => getMetric("qa_f1"), InputError, '"qa_f1_score"');
  assertThrows(() => registerMetric(getMetric("f1_score")), InputError, "already registered");
  assertThrows(
    () => registerMetric({ ...getMetric("f1_score"), name: "F1" }),
    InputError,
    "lower snake case",
  );
  assertEquals(nearMatches("rouge", ["rouge_score", "rouge_score_scbench", "f1_score"]), [
    "rouge_score",
    "rouge_score_scbench",
  ]);
});

Deno.test("FastKVzip rule order, sub-tasks and repoqa_and_kv", () => {
  assertEquals(fastkvzipMetricName("scbench_repoqa"), "repoqa_score");
  assertEquals(fastkvzipMetricName("scbench_repoqa_and_kv", "scbench_kv"), "include_score");
  assertEquals(fastkvzipMetricName("scbench_repoqa_and_kv", "scbench_repoqa"), "repoqa_score");
  assertThrows(() => fastkvzipMetricName("scbench_repoqa_and_kv"), InputError, "neither kv");
  // "_vt" is checked before "summary", "_mf" before "_many_shot".
  assertEquals(fastkvzipMetricName("scbench_summary_vt"), "include_score_multi");
  assertEquals(fastkvzipMetricName("scbench_summary_with_needles"), "rouge_score_scbench");
  assertEquals(fastkvzipMetricName("scbench_summary_with_needles", "scbench_kv"), "include_score");
  assertEquals(fastkvzipMetricName("scbench_kv_tiny"), "include_score");
  assertEquals(fastkvzipMetricName("scbench_choice_eng"), "choice_eng_score");
  assertEquals(rulerMetricName("qa_2"), "string_match_part");
  assertEquals(rulerMetricName("niah_multivalue"), "string_match_all");
});

Deno.test("normalisation: punctuation, articles, whitespace, number words, Unicode", () => {
  assertEquals(normalizeAnswer("Three apples, and an Orange."), "3 apples and orange");
  assertEquals(normalizeAnswer("the\u3000answer\u00a0is  nine"), "answer is 9");
  assertEquals(normalizeAnswer("nineteen"), "nineteen");
  assertEquals(normalizeAnswer("théâtre the"), "théâtre");
  assertEquals(normalizeAnswer("x \ufeffone"), "x \ufeff1"); // U+FEFF: no space, no word char
  assertEquals(normalizeSquadAnswer("The Nine Lives"), "nine lives");
  assertEquals(pySplit("a\x1cb\x85c\ufeffd"), ["a", "b", "c\ufeffd"]);
  assertEquals(pyStrip("\x1f x \x85"), "x");
  assertEquals([pyRound(0.5), pyRound(1.5), pyRound(2.5), pyRound(62.5000001)], [0, 2, 2, 63]);
  assertEquals([pyFloatRepr(1), pyFloatRepr(1.5e-5), pyFloatRepr(1e16)], [
    "1.0",
    "1.5e-05",
    "1e+16",
  ]);
});

Deno.test("metrics refuse queries they cannot grade, naming what is missing", () => {
  assertThrows(() => getMetric("include_score").score("x", []), InputError, "no reference");
  assertThrows(() => getMetric("string_match_all").score("x", []), InputError, "no reference");
  assertThrows(
    () => getMetric("classification_score").score("Location", ["Location"]),
    InputError,
    "meta.allClasses",
  );
  assertThrows(
    () => getMetric("mrcr_grade").score("x", ["x"]),
    InputError,
    "randomStringToPrepend",
  );
  assertThrows(
    () => getMetric("retrieval_score").score("Paragraph 1", ["the first"]),
    InputError,
    '"Paragraph N"',
  );
  assertThrows(
    () => getMetric("repoqa_score").score("x", ["def f(): pass"], { meta: { needles: [] } }),
    InputError,
    "meta.funcName",
  );
  assertThrows(
    () => getMetric("repoqa_score").score("x", ["y"], { meta: { needles: [1], funcName: "f" } }),
    InputError,
    "meta.needles",
  );
});

Deno.test("worked examples: several references and edge cases", () => {
  // SCBench metrics take the best reference; empty or </s>-only predictions score 0.
  assertEquals(getMetric("include_score").score("It was Denver.", ["Boston", "denver"]), 1);
  assertEquals(getMetric("include_score").score("</s>", ["x"]), 0);
  assertEquals(getMetric("exact_match_score").score("The Beatles!", ["beatles"]), 1);
  assertAlmostEquals(getMetric("f1_score").score("one two", ["1 2 3"]), 0.8, 1e-12);
  // RULER keeps case-insensitive substrings, no normalisation.
  assertEquals(getMetric("string_match_part").score("PARIS.", ["paris"]), 1);
  // LongBench first-line cut only when the loader asks for it.
  const qa = getMetric("qa_f1_score");
  assertEquals(qa.score("x\nParis", ["Paris"], { meta: { firstLine: true } }), 0);
  assertAlmostEquals(qa.score("x\nParis", ["Paris"]), 2 / 3, 1e-12);
  // code_sim_score on a tie: fuzz.ratio rounds half to even.
  assertEquals(getMetric("code_sim_score").score("ab", ["abcdef"]), 0.5);
});

Deno.test("code_line_sim: a correct line scores 1 however it is indented; LongBench's does not", () => {
  const line = getMetric("code_line_sim");
  assertEquals(line.score("        return a + b\n", ["return a + b"]), 1);
  assertEquals(line.score("# the sum\n    return a + b", ["return a + b"]), 1);
  assert(getMetric("code_sim_score").score("        return a + b", ["return a + b"]) < 0.8);
});
