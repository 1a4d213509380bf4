/**
 * Replays tests/fixtures/metrics/metric_cases.json: every expected value there was computed by
 * the benchmark's own Python scorer (tools/make_metric_fixtures.py names the sources).
 */

import { assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { functionSimilarity, sanitizeOutput } from "./repoqa.ts";
import { sequenceRatio } from "./difflib.ts";
import { fuzzRatio, levenshteinRatio } from "./levenshtein.ts";
import {
  fastkvzipMetricName,
  getMetric,
  LONGBENCH_FIRST_LINE,
  LONGBENCH_METRICS,
  rulerMetricName,
} from "./mod.ts";
import { rougeL } from "./rouge.ts";

const FIXTURE = new URL("../../tests/fixtures/metrics/metric_cases.json", import.meta.url);
const cases = JSON.parse(await Deno.readTextFile(FIXTURE));
const TOL = 1e-12;

function label(...parts: unknown[]): string {
  return parts.map((p) => JSON.stringify(p)).join(" ");
}

Deno.test("FastKVzip/SCBench evaluate_answer: the rule for each dataset and its score", () => {
  for (const c of cases.scbench) {
    const metric = getMetric(fastkvzipMetricName(c.dataset));
    const got = metric.score(c.prediction, [c.reference]);
    assertAlmostEquals(got, c.expected, TOL, label(c.dataset, metric.name, c.prediction));
  }
});

Deno.test("LongBench scorer: dataset2metric, first-line cut, best over answers", () => {
  for (const c of cases.longbench) {
    const meta = { firstLine: LONGBENCH_FIRST_LINE.has(c.dataset), allClasses: c.all_classes };
    const metric = getMetric(LONGBENCH_METRICS[c.dataset]);
    const got = metric.score(c.prediction, c.answers, { meta });
    assertAlmostEquals(got, c.expected, TOL, label(c.dataset, c.prediction));
    if (c.expected_difflib !== undefined) {
      const difflib = getMetric("code_sim_score_difflib").score(c.prediction, c.answers, { meta });
      assertAlmostEquals(difflib, c.expected_difflib, TOL, label("difflib", c.prediction));
    }
  }
});

Deno.test("RULER string_match_all / string_match_part after postprocess_pred", () => {
  for (const c of cases.ruler) {
    const got = getMetric(rulerMetricName(c.task)).score(c.prediction, c.answers);
    assertAlmostEquals(100 * got, c.expected_x100_rounded, 0.005, label(c.task, c.prediction));
  }
});

Deno.test("MRCR grade: random prefix rule and difflib ratio (autojunk included)", () => {
  for (const c of cases.mrcr) {
    const meta = { randomStringToPrepend: c.prefix };
    const got = getMetric("mrcr_grade").score(c.prediction, [c.answer], { meta });
    assertAlmostEquals(got, c.expected, TOL, label(c.prefix, c.prediction.slice(0, 30)));
  }
});

Deno.test("difflib.SequenceMatcher.ratio, Levenshtein.ratio and fuzz.ratio", () => {
  for (const [a, b, expected] of cases.difflib_ratio) {
    assertAlmostEquals(sequenceRatio(a, b), expected, TOL, label("difflib", a, b));
  }
  for (const [a, b, expected] of cases.levenshtein_ratio) {
    assertAlmostEquals(levenshteinRatio(a, b), expected, TOL, label("levenshtein", a, b));
  }
  for (const [a, b, expected] of cases.fuzz_ratio) {
    assertEquals(fuzzRatio(a, b), expected, label("fuzz", a, b));
  }
});

Deno.test("nltk sentence_bleu with smoothing method4 (RepoQA similarity)", () => {
  for (const [ref, hyp, expected] of cases.bleu) {
    assertAlmostEquals(functionSimilarity(hyp, ref), expected, TOL, label(ref, hyp));
  }
});

Deno.test("RepoQA: first code block, best needle, BLEU ≥ 0.8", () => {
  const { needles, cases: repoCases } = cases.repoqa;
  for (const c of repoCases) {
    const meta = { needles, funcName: c.gold, lang: "python" };
    assertEquals(
      getMetric("repoqa_score").score(c.prediction, [needles[0].code], { meta }),
      c.expected,
      c.prediction,
    );
    const cut = c.prediction.endsWith("</s>") ? c.prediction.slice(0, -4) : c.prediction;
    assertEquals(sanitizeOutput(cut, "python", { extract: false }), c.sanitized);
  }
});

Deno.test("rouge 1.0.1 ROUGE-L F1", () => {
  for (const [p, r, expected] of cases.rouge_l) {
    assertAlmostEquals(rougeL(p, r), expected, TOL, label(p, r));
  }
});
