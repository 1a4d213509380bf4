/**
 * RULER's scorers (`scripts/eval/synthetic/constants.py`, NVIDIA/RULER c3f5e3b), per sample
 * rather than averaged ×100, after `evaluate.py`'s `postprocess_pred`: strip, replace every
 * control character U+0000–U+001F by "\n", strip again.
 *
 * - `string_match_all` (niah, vt, cwe, fwe): the fraction of references that occur in the
 *   prediction, case-insensitively.
 * - `string_match_part` (qa): 1 when any reference occurs, case-insensitively.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { pyLower, pyStrip } from "./py_text.ts";
import type { Metric } from "./types.ts";

/** RULER's `postprocess_pred`. */
export function rulerPostprocess(prediction: string): string {
  // deno-lint-ignore no-control-regex
  return pyStrip(pyStrip(prediction).replace(/[\x00-\x1f]/g, "\n"));
}

function hits(prediction: string, answers: readonly string[], name: string): number[] {
  if (answers.length === 0) throw new InputError(`${name}: the query has no reference answer`);
  const pred = pyLower(rulerPostprocess(prediction));
  return answers.map((ref) => pred.includes(pyLower(ref)) ? 1.0 : 0.0);
}

/** `string_match_all`. */
export const stringMatchAllMetric: Metric = {
  name: "string_match_all",
  source: "ruler",
  description: "fraction of the references found in the prediction, case-insensitive (RULER)",
  score(prediction: string, answers: readonly string[]): number {
    const found = hits(prediction, answers, "string_match_all");
    return found.reduce((sum, hit) => sum + hit, 0) / found.length;
  },
};

/** `string_match_part`. */
export const stringMatchPartMetric: Metric = {
  name: "string_match_part",
  source: "ruler",
  description: "1 when any reference is found in the prediction, case-insensitive (RULER qa)",
  score(prediction: string, answers: readonly string[]): number {
    return Math.max(...hits(prediction, answers, "string_match_part"));
  },
};

/** The RULER metric for a task name (its first "_"-separated word is the family). */
export function rulerMetricName(task: string): string {
  return task.split("_")[0] === "qa" ? "string_match_part" : "string_match_all";
}
