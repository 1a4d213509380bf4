/**
 * The metric registry. Each metric is registered under the name its benchmark's scorer uses;
 * a query names its metric and the runner looks it up here.
 *
 * | name | benchmark | used for |
 * | --- | --- | --- |
 * | include_score, exact_match_score, exact_match_score_raw, include_score_multi, include_score_manyshot, rouge_score_scbench, qa_eng_score, choice_eng_score, include_score_gsm, f1_score | SCBench via FastKVzip | squad, gsm, scbench_* (see {@linkcode fastkvzipMetricName}) |
 * | repoqa_score | RepoQA via SCBench | scbench_repoqa |
 * | qa_f1_score, rouge_score, classification_score, retrieval_score, count_score, code_sim_score, code_sim_score_difflib | LongBench v1 | see {@linkcode LONGBENCH_METRICS} |
 * | string_match_all, string_match_part | RULER | see {@linkcode rulerMetricName} |
 * | mrcr_grade | OpenAI MRCR via FastKVzip | mrcr |
 * | math_equal | Qwen-math harness via FastKVzip/R-KV | gsm8k, math500, aime |
 *
 * @example
 * ```ts
 * import { getMetric } from "./mod.ts";
 * getMetric("string_match_all").score("The numbers are 1 and 2.", ["1", "2", "3"]); // 2/3
 * ```
 *
 * @module
 */

import { InputError, nearMatches } from "../../errors.ts";
import { mathEqualMetric } from "./math.ts";
import {
  classificationScoreMetric,
  codeLineSimMetric,
  codeSimScoreDifflibMetric,
  codeSimScoreMetric,
  countScoreMetric,
  qaF1ScoreMetric,
  retrievalScoreMetric,
  rougeScoreMetric,
} from "./longbench.ts";
import { mrcrGradeMetric } from "./mrcr.ts";
import { repoqaScoreMetric } from "./repoqa.ts";
import { stringMatchAllMetric, stringMatchPartMetric } from "./ruler.ts";
import {
  choiceEngScoreMetric,
  exactMatchScoreMetric,
  exactMatchScoreRawMetric,
  f1ScoreMetric,
  includeScoreGsmMetric,
  includeScoreManyshotMetric,
  includeScoreMetric,
  includeScoreMultiMetric,
  qaEngScoreMetric,
  rougeScoreScbenchMetric,
} from "./scbench.ts";
import type { Metric } from "./types.ts";

export type { Metric, MetricContext, MetricSource } from "./types.ts";
export { fastkvzipMetricName } from "./scbench.ts";
export { LONGBENCH_FIRST_LINE, LONGBENCH_METRICS } from "./longbench.ts";
export { rulerMetricName } from "./ruler.ts";

const registry = new Map<string, Metric>();

/**
 * Register a metric under `metric.name`.
 *
 * @throws {InputError} when the name is taken or not lower snake case.
 */
export function registerMetric(metric: Metric): void {
  if (!/^[a-z][a-z0-9_]*$/.test(metric.name)) {
    throw new InputError(`metric name "${metric.name}": expected lower snake case`);
  }
  if (registry.has(metric.name)) {
    throw new InputError(`metric "${metric.name}" is already registered`);
  }
  registry.set(metric.name, metric);
}

/**
 * The metric registered as `name`.
 *
 * @throws {InputError} naming the closest registered names when there is none.
 */
export function getMetric(name: string): Metric {
  const metric = registry.get(name);
  if (metric !== undefined) return metric;
  const near = nearMatches(name, [...registry.keys()]);
  const hint = near.length > 0 ? `; did you mean ${near.map((n) => `"${n}"`).join(" or ")}?` : "";
  throw new InputError(`unknown metric "${name}"${hint} (known: ${listMetricNames().join(", ")})`);
}

/** True when a metric is registered as `name`. */
export function hasMetric(name: string): boolean {
  return registry.has(name);
}

/** Every registered metric, sorted by name. */
export function listMetrics(): Metric[] {
  return [...registry.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Every registered metric name, sorted. */
export function listMetricNames(): string[] {
  return listMetrics().map((m) => m.name);
}

export { nearMatches };

for (
  const metric of [
    includeScoreMetric,
    exactMatchScoreMetric,
    exactMatchScoreRawMetric,
    includeScoreMultiMetric,
    includeScoreManyshotMetric,
    rougeScoreScbenchMetric,
    qaEngScoreMetric,
    choiceEngScoreMetric,
    includeScoreGsmMetric,
    f1ScoreMetric,
    repoqaScoreMetric,
    qaF1ScoreMetric,
    rougeScoreMetric,
    classificationScoreMetric,
    retrievalScoreMetric,
    countScoreMetric,
    codeSimScoreMetric,
    codeSimScoreDifflibMetric,
    codeLineSimMetric,
    stringMatchAllMetric,
    stringMatchPartMetric,
    mrcrGradeMetric,
    mathEqualMetric,
  ]
) {
  registerMetric(metric);
}
