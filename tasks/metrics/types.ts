/**
 * The shape every metric has. A metric grades one prediction against a query's reference
 * answers and returns a score in [0, 1] (the benchmarks' ×100 is the report's business).
 *
 * @module
 */

/** What a metric may read besides the prediction and the references: the query's `meta`. */
export interface MetricContext {
  /**
   * Grading inputs a loader or generator put on the query, e.g. `allClasses` (LongBench
   * classification), `needles`/`lang` (RepoQA), `randomStringToPrepend` (MRCR),
   * `firstLine` (LongBench's first-line cut), `timeLimitMs` (math).
   */
  meta?: Readonly<Record<string, unknown>>;
}

/** The benchmark whose scorer a metric ports. */
export type MetricSource = "scbench" | "longbench" | "ruler" | "repoqa" | "mrcr" | "math";

/** One registered metric. */
export interface Metric {
  /** Registry name: the scorer's own function name in its benchmark, e.g. "qa_f1_score". */
  name: string;
  /** The benchmark whose scorer this ports. */
  source: MetricSource;
  /** One line: what it computes and how it treats several references. */
  description: string;
  /**
   * Score `prediction` against `answers`.
   * @throws {InputError} when the references cannot be graded (none given, a field missing).
   */
  score(prediction: string, answers: readonly string[], context?: MetricContext): number;
}
