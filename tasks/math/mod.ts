/**
 * Math answer extraction and equivalence (the Qwen2.5-Math evaluation harness that FastKVzip
 * and R-KV use for GSM8K, MATH-500 and AIME): {@linkcode gradeMathOutput} does the whole
 * grading of one output; the pieces are exported for tests and other graders.
 *
 * @example
 * ```ts
 * import { gradeMathOutput } from "./mod.ts";
 * gradeMathOutput("Thus the answer is \\boxed{\\dfrac{3}{4}}.", "0.75").correct; // true
 * ```
 *
 * @module
 */

export {
  choiceAnswerClean,
  extractAnswer,
  fixASlashB,
  fixFracs,
  fixSqrt,
  lastBoxed,
  STOP_WORDS,
  stripString,
  truncateAtStopWords,
} from "./answer.ts";
export {
  DEFAULT_MATH_TIME_LIMIT_MS,
  type GradeMathOptions,
  gradeMathOutput,
  isClose,
  mathEqual,
  type MathEqualOptions,
  type MathGrade,
  parseDigits,
  pyFloat,
  symbolicEqual,
} from "./equal.ts";
export { latexEquationToMathjs, LatexError, latexToMathjs } from "./latex.ts";
export { convertWordNumber, wordToNum } from "./word_number.ts";
