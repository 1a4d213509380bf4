/**
 * SCBench/MInference metrics as FastKVzip grades them (`prefill/results/metric.py`, which
 * adapts MInference's `scbench` scorers), and the rule that picks one per dataset.
 *
 * Every metric here first does what `evaluate_answer` does to each prediction: one trailing
 * `</s>` is cut, and a prediction that is empty after `strip()` scores 0. FastKVzip grades one
 * reference per question; given several, these metrics take the best score over them.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { normalizeAnswer } from "./normalize.ts";
import { pyLower, pySplit, pyStrip } from "./py_text.ts";
import { rougeL } from "./rouge.ts";
import type { Metric, MetricContext } from "./types.ts";

/** Cut one trailing `</s>`; `null` when nothing but whitespace is left (score 0). */
export function prepareScbenchPrediction(prediction: string): string | null {
  const cut = prediction.endsWith("</s>") ? prediction.slice(0, -4) : prediction;
  return pyStrip(cut).length === 0 ? null : cut;
}

/** Options of the SCBench scorers that may skip normalisation. */
export interface NormalizeOptions {
  /** Normalise both texts first (default true, as the Python default). */
  normalize?: boolean;
}

/** `include_score`: is the normalised reference a substring of the normalised prediction? */
export function includeScore(
  prediction: string,
  reference: string,
  options: NormalizeOptions = {},
): number {
  if (options.normalize ?? true) {
    prediction = normalizeAnswer(prediction);
    reference = normalizeAnswer(reference);
  }
  return prediction.includes(reference) ? 1 : 0;
}

/** `exact_match_score`: are the (normalised) prediction and reference equal? */
export function exactMatchScore(
  prediction: string,
  reference: string,
  options: NormalizeOptions = {},
): number {
  if (options.normalize ?? true) {
    prediction = normalizeAnswer(prediction);
    reference = normalizeAnswer(reference);
  }
  return prediction === reference ? 1 : 0;
}

/** `include_score_multi` (scbench_vt): the fraction of ", "-separated references contained. */
export function includeScoreMulti(
  prediction: string,
  reference: string,
  options: NormalizeOptions = {},
): number {
  let refs = reference.split(", ");
  if (options.normalize ?? true) {
    prediction = normalizeAnswer(prediction);
    refs = refs.map(normalizeAnswer);
  }
  let hits = 0;
  for (const ref of refs) if (prediction.includes(ref)) hits++;
  return hits / refs.length;
}

/**
 * `include_score_manyshot`: when both contain "(", compare the text between the first "(" and
 * the following ")"; otherwise drop a leading "(X)" from the reference and test normalised
 * containment.
 */
export function includeScoreManyshot(prediction: string, reference: string): number {
  if (prediction.includes("(") && reference.includes("(")) {
    const predLetter = prediction.split("(")[1].split(")")[0];
    const refLetter = reference.split("(")[1].split(")")[0];
    return predLetter === refLetter ? 1 : 0;
  }
  if (reference.length === 0) {
    throw new InputError("include_score_manyshot: the reference is empty; expected an option");
  }
  if (reference[0] === "(") {
    const parts = reference.split(")");
    if (parts.length < 2) {
      throw new InputError(
        `include_score_manyshot: reference ${
          JSON.stringify(reference)
        } opens "(" without ")"; expected "(X) text"`,
      );
    }
    reference = pyStrip(parts[1]);
  }
  return includeScore(prediction, reference);
}

/** `f1_score`: bag-of-words F1 over whitespace tokens of the (normalised) texts. */
export function tokenF1(
  prediction: string,
  reference: string,
  options: NormalizeOptions = {},
): number {
  if (options.normalize ?? true) {
    prediction = normalizeAnswer(prediction);
    reference = normalizeAnswer(reference);
  }
  return bagOfWordsF1(pySplit(prediction), pySplit(reference));
}

/** Counter(prediction) & Counter(reference) F1, with Python's operation order. */
export function bagOfWordsF1(prediction: readonly string[], reference: readonly string[]): number {
  const refCounts = new Map<string, number>();
  for (const token of reference) refCounts.set(token, (refCounts.get(token) ?? 0) + 1);
  const predCounts = new Map<string, number>();
  for (const token of prediction) predCounts.set(token, (predCounts.get(token) ?? 0) + 1);
  let numSame = 0;
  for (const [token, count] of predCounts) numSame += Math.min(count, refCounts.get(token) ?? 0);
  if (numSame === 0) return 0;
  const precision = (1.0 * numSame) / prediction.length;
  const recall = (1.0 * numSame) / reference.length;
  return (2 * precision * recall) / (precision + recall);
}

/** The `gsm` rule: text after the last "the answer is " of the lowered prediction ⊇ "#### N". */
export function includeScoreGsm(prediction: string, reference: string): number {
  const pred = pyLower(pyStrip(prediction)).split("the answer is ").at(-1)!;
  const ref = pyStrip(reference).split("#### ").at(-1)!;
  return pred.includes(ref) ? 1 : 0;
}

function bestOver(
  name: string,
  answers: readonly string[],
  grade: (reference: string) => number,
): number {
  if (answers.length === 0) throw new InputError(`${name}: the query has no reference answer`);
  let best = 0;
  for (const answer of answers) best = Math.max(best, grade(answer));
  return best;
}

function scbenchMetric(
  name: string,
  description: string,
  grade: (prediction: string, reference: string) => number,
): Metric {
  return {
    name,
    source: "scbench",
    description,
    score(prediction: string, answers: readonly string[], _context?: MetricContext): number {
      const pred = prepareScbenchPrediction(prediction);
      if (pred === null) {
        if (answers.length === 0) {
          throw new InputError(`${name}: the query has no reference answer`);
        }
        return 0;
      }
      return bestOver(name, answers, (reference) => grade(pred, reference));
    },
  };
}

/** Normalised containment: squad, kv, prefix_suffix and every dataset no other rule claims. */
export const includeScoreMetric: Metric = scbenchMetric(
  "include_score",
  "normalised reference ⊂ normalised prediction (SCBench normalisation); best over references",
  (p, r) => includeScore(p, r),
);

/** Normalised exact match. */
export const exactMatchScoreMetric: Metric = scbenchMetric(
  "exact_match_score",
  "normalised prediction = normalised reference (SCBench normalisation); best over references",
  (p, r) => exactMatchScore(p, r),
);

/** scbench_mf: exact string match without normalisation. */
export const exactMatchScoreRawMetric: Metric = scbenchMetric(
  "exact_match_score_raw",
  "prediction = reference, no normalisation (FastKVzip's _mf rule)",
  (p, r) => exactMatchScore(p, r, { normalize: false }),
);

/** scbench_vt: fraction of the ", "-separated references contained, no normalisation. */
export const includeScoreMultiMetric: Metric = scbenchMetric(
  "include_score_multi",
  'fraction of the ", "-separated references contained in the prediction, no normalisation (_vt)',
  (p, r) => includeScoreMulti(p, r, { normalize: false }),
);

/** scbench_many_shot: option letter, else normalised containment of the option text. */
export const includeScoreManyshotMetric: Metric = scbenchMetric(
  "include_score_manyshot",
  "same option letter in parentheses, else normalised containment of the option text (_many_shot)",
  includeScoreManyshot,
);

/**
 * scbench_summary: ROUGE-L F1 (`rouge` package) after the `</s>`/empty handling. Registered as
 * "rouge_score_scbench" because LongBench's `rouge_score` (no `</s>` cut) holds the plain name.
 */
export const rougeScoreScbenchMetric: Metric = scbenchMetric(
  "rouge_score_scbench",
  "ROUGE-L F1 of the rouge 1.0.1 package (summary-level union LCS); best over references",
  rougeL,
);

/** scbench_qa_eng: max(token F1, containment), both normalised. */
export const qaEngScoreMetric: Metric = scbenchMetric(
  "qa_eng_score",
  "max(normalised token F1, normalised containment) (FastKVzip's qa_eng rule)",
  (p, r) => Math.max(tokenF1(p, r), includeScore(p, r)),
);

/** scbench_choice_eng: first line of the prediction, normalised containment. */
export const choiceEngScoreMetric: Metric = scbenchMetric(
  "choice_eng_score",
  "normalised containment in the prediction's first line (FastKVzip's choice_eng rule)",
  (p, r) => includeScore(p.split("\n")[0], r),
);

/** gsm: raw containment of the "#### N" value after the last "the answer is ". */
export const includeScoreGsmMetric: Metric = scbenchMetric(
  "include_score_gsm",
  'raw containment of the text after "#### " in the text after the last "the answer is "',
  includeScoreGsm,
);

/** Token F1 with SCBench normalisation (FastKVzip's `f1_score`). */
export const f1ScoreMetric: Metric = scbenchMetric(
  "f1_score",
  "bag-of-words F1 over whitespace tokens of the SCBench-normalised texts",
  (p, r) => tokenF1(p, r),
);

/**
 * The metric FastKVzip applies to a question, by its rules in their order: repoqa (not
 * repoqa_and_kv), repoqa_and_kv (per sub-question: a "kv" sub-task → include_score, a "repoqa"
 * one → repoqa_score), _vt, _mf, _many_shot, summary, qa_eng, choice_eng, gsm, otherwise
 * include_score. Outside repoqa, a question's sub-task (the multi-task sets' `task` column)
 * replaces the dataset name, as `evaluate_answer` does.
 *
 * @param dataset e.g. "scbench_vt", "scbench_kv_short", "squad".
 * @param subtask the question's sub-task, for the multi-task sets.
 * @throws {InputError} for repoqa_and_kv without a kv or repoqa sub-task.
 * @example
 * ```ts
 * fastkvzipMetricName("scbench_many_shot_tiny"); // "include_score_manyshot"
 * ```
 */
export function fastkvzipMetricName(dataset: string, subtask?: string): string {
  if (dataset.includes("repoqa")) {
    if (!dataset.includes("repoqa_and_kv")) return "repoqa_score";
    if (subtask?.includes("kv")) return "include_score";
    if (subtask?.includes("repoqa")) return "repoqa_score";
    throw new InputError(
      `${dataset}: question sub-task ${JSON.stringify(subtask)} is neither kv nor repoqa`,
    );
  }
  const name = subtask ?? dataset;
  if (name.includes("_vt")) return "include_score_multi";
  if (name.includes("_mf")) return "exact_match_score_raw";
  if (name.includes("_many_shot")) return "include_score_manyshot";
  if (name.includes("summary")) return "rouge_score_scbench";
  if (name.includes("qa_eng")) return "qa_eng_score";
  if (name.includes("choice_eng")) return "choice_eng_score";
  if (name.includes("gsm")) return "include_score_gsm";
  return "include_score";
}
