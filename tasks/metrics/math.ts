/**
 * `math_equal` as a registered metric: grades a full model output (reasoning and all) against
 * the reference answer with the Qwen-math harness pipeline of `tasks/math`.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { DEFAULT_MATH_TIME_LIMIT_MS, gradeMathOutput } from "../math/equal.ts";
import type { Metric, MetricContext } from "./types.ts";

/**
 * `math_equal`: 1 when the answer extracted from the output equals the reference (numerically
 * within 1e-4 relative, or symbolically). `meta.timeLimitMs` overrides the per-comparison limit
 * (default 10 s); several references: the best.
 */
export const mathEqualMetric: Metric = {
  name: "math_equal",
  source: "math",
  description:
    "last \\boxed{} (or 'the answer is', or last number), strip_string, math_equal (1e-4, symbolic)",
  score(prediction: string, answers: readonly string[], context?: MetricContext): number {
    if (answers.length === 0) throw new InputError("math_equal: the query has no reference answer");
    const limit = context?.meta?.timeLimitMs;
    const timeLimitMs = typeof limit === "number" && limit > 0 ? limit : DEFAULT_MATH_TIME_LIMIT_MS;
    for (const answer of answers) {
      if (gradeMathOutput(prediction, answer, { timeLimitMs }).correct) return 1;
    }
    return 0;
  },
};
