/**
 * OpenAI MRCR's grader as FastKVzip runs it (`prefill/eval_chunk_mrcr.py::grade`): 0 unless the
 * response starts with the sample's `random_string_to_prepend`; otherwise that prefix is removed
 * from the response and from the answer, and the score is
 * `difflib.SequenceMatcher(None, response, answer).ratio()` (autojunk on, code points).
 *
 * The prefix comes from the query's `meta.randomStringToPrepend`.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { sequenceRatio } from "./difflib.ts";
import { removePrefix } from "./py_text.ts";
import type { Metric, MetricContext } from "./types.ts";

/**
 * MRCR `grade(response, answer, random_string_to_prepend)`.
 *
 * @example
 * ```ts
 * mrcrGrade("xYz1 a poem", "xYz1 a poem.", { randomStringToPrepend: "xYz1" }); // ≈ 0.952
 * ```
 */
export function mrcrGrade(
  response: string,
  answer: string,
  options: { randomStringToPrepend: string },
): number {
  const { randomStringToPrepend } = options;
  if (!response.startsWith(randomStringToPrepend)) return 0.0;
  return sequenceRatio(
    removePrefix(response, randomStringToPrepend),
    removePrefix(answer, randomStringToPrepend),
  );
}

/** `mrcr_grade`: needs `meta.randomStringToPrepend`; best over references. */
export const mrcrGradeMetric: Metric = {
  name: "mrcr_grade",
  source: "mrcr",
  description: "0 without the random prefix, else difflib ratio of the unprefixed texts (MRCR)",
  score(prediction: string, answers: readonly string[], context?: MetricContext): number {
    const prefix = context?.meta?.randomStringToPrepend;
    if (typeof prefix !== "string") {
      throw new InputError(
        "mrcr_grade: query meta.randomStringToPrepend is missing; expected the row's " +
          "random_string_to_prepend",
      );
    }
    if (answers.length === 0) throw new InputError("mrcr_grade: the query has no reference answer");
    let best = 0;
    for (const answer of answers) {
      best = Math.max(best, mrcrGrade(prediction, answer, { randomStringToPrepend: prefix }));
    }
    return best;
  },
};
