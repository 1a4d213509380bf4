/**
 * Aggregation of result rows into cells.csv, the way the field reports: a sample's score is the
 * mean over its queries, a cell's score the mean over samples (spec §6.5) with a 95 % bootstrap
 * confidence interval and its sample count, and the relative performance of a cell is its
 * score over the `full` cache's score on the same model, task and protocol. The headline is
 * the relative performance averaged over tasks, ×100: over the tasks where the full cache
 * scores above 0 (the others have no relative figure for any method).
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { seededRandom } from "../kernels/random.ts";
import type { ResultRow } from "./store.ts";

/** One aggregate: a cell on one task, or a method and budget averaged over tasks. */
export interface CellSummary {
  /**
   * "task": one cell; "average": relative performance averaged over the tasks where the full
   * cache scores above 0.
   */
  scope: "task" | "average";
  model: string;
  method: string;
  params: string;
  policy: string;
  protocol: string;
  suite: string;
  /**
   * The task, or "(average)". When the rows hold one task under several option sets (two
   * context lengths, two task seeds), each cell's task names the options that tell it apart:
   * `niah_single_1 (4096 tokens)`.
   */
  task: string;
  /** The cell's task options as canonical JSON (the rows' `task_options`; "" for averages). */
  task_options: string;
  budget_kind: string;
  budget: number;
  n_samples: number;
  n_queries: number;
  /** Mean score (task scope) or mean relative performance ×100 (average scope). */
  score: number;
  /** 95 % bootstrap interval of `score` (task scope; NaN for averages). */
  score_ci_low: number;
  score_ci_high: number;
  /** score / full's score on the same model, task and protocol (NaN without a full cell). */
  relative: number;
  kept_ratio_achieved: number;
  kv_bytes_held: number;
  kv_bytes_full: number;
  prefill_ms: number;
  decode_ms_per_token: number;
  scoring_ms: number;
  selection_ms: number;
}

/** The columns of cells.csv, in order. */
export const CELL_COLUMNS: readonly (keyof CellSummary)[] = [
  "scope",
  "model",
  "method",
  "params",
  "policy",
  "protocol",
  "suite",
  "task",
  "task_options",
  "budget_kind",
  "budget",
  "n_samples",
  "n_queries",
  "score",
  "score_ci_low",
  "score_ci_high",
  "relative",
  "kept_ratio_achieved",
  "kv_bytes_held",
  "kv_bytes_full",
  "prefill_ms",
  "decode_ms_per_token",
  "scoring_ms",
  "selection_ms",
];

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length === 0 ? NaN : s / xs.length;
}

/**
 * Percentile bootstrap interval of the mean: `resamples` draws with replacement, seeded so the
 * same rows always give the same interval.
 */
export function bootstrapInterval(
  values: readonly number[],
  options: { resamples?: number; confidence?: number; seed?: number } = {},
): [number, number] {
  const n = values.length;
  if (n === 0) return [NaN, NaN];
  if (n === 1) return [values[0], values[0]];
  const resamples = options.resamples ?? 1000;
  const alpha = (1 - (options.confidence ?? 0.95)) / 2;
  const rand = seededRandom(options.seed ?? 0);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[Math.floor(rand() * n)];
    means[b] = s / n;
  }
  means.sort();
  const at = (q: number) =>
    means[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return [at(alpha), at(1 - alpha)];
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [item]);
    else g.push(item);
  }
  return groups;
}

const FULL = "full";

/** Aggregate rows into per-task cells and per-budget averages over tasks. */
export function aggregate(rows: readonly ResultRow[]): CellSummary[] {
  const cells: CellSummary[] = [];
  for (const cellRows of groupBy(rows, (r) => r.cell_id).values()) {
    const first = cellRows[0];
    const bySample = groupBy(cellRows, (r) => r.sample_id);
    const sampleScores = [...bySample.values()].map((qs) => mean(qs.map((q) => q.score)));
    const [low, high] = bootstrapInterval(sampleScores, { seed: hashSeed(first.cell_id) });
    const avg = (c: keyof ResultRow) => mean(cellRows.map((r) => r[c] as number));
    cells.push({
      scope: "task",
      model: first.model,
      method: first.method,
      params: first.params,
      policy: first.policy,
      protocol: first.protocol,
      suite: first.suite,
      task: first.task,
      task_options: first.task_options,
      budget_kind: first.budget_kind,
      budget: first.budget,
      n_samples: bySample.size,
      n_queries: cellRows.length,
      score: mean(sampleScores),
      score_ci_low: low,
      score_ci_high: high,
      relative: NaN,
      kept_ratio_achieved: avg("kept_ratio_achieved"),
      kv_bytes_held: avg("kv_bytes_held"),
      kv_bytes_full: avg("kv_bytes_full"),
      prefill_ms: avg("prefill_ms"),
      decode_ms_per_token: avg("decode_ms_per_token"),
      scoring_ms: avg("scoring_ms"),
      selection_ms: avg("selection_ms"),
    });
  }
  labelTaskVariants(cells);
  // Relative performance against the full cache of the same model, task and protocol.
  const fullScore = new Map<string, number>();
  const taskKey = (c: CellSummary) => `${c.model}\u0000${c.task}\u0000${c.protocol}`;
  for (const c of cells) if (c.method === FULL) fullScore.set(taskKey(c), c.score);
  for (const c of cells) {
    const full = fullScore.get(taskKey(c));
    c.relative = full === undefined || full === 0 ? NaN : c.score / full;
  }
  const averages: CellSummary[] = [];
  const byBudget = groupBy(
    cells,
    (c) =>
      [c.model, c.method, c.params, c.policy, c.protocol, c.budget_kind, c.budget].join("\u0000"),
  );
  // The tasks an average runs over: those where the full cache scores above 0 on the same
  // model and protocol (a task the model never solves has no relative figure for any method).
  const scored = new Map<string, number>();
  const modelKey = (c: CellSummary) => `${c.model}\u0000${c.protocol}`;
  for (const c of cells) {
    if (c.method === FULL && c.score > 0) {
      scored.set(modelKey(c), (scored.get(modelKey(c)) ?? 0) + 1);
    }
  }
  for (const group of byBudget.values()) {
    const rel = group.map((c) => c.relative).filter((x) => Number.isFinite(x));
    const first = group[0];
    // Defined only when the group has every such task, so all methods average the same tasks.
    const complete = rel.length > 0 && rel.length === scored.get(modelKey(first));
    const avg = (k: keyof CellSummary) => mean(group.map((c) => c[k] as number));
    averages.push({
      ...first,
      scope: "average",
      suite: [...new Set(group.map((c) => c.suite))].sort().join("+"),
      task: "(average)",
      task_options: "",
      n_samples: group.reduce((n, c) => n + c.n_samples, 0),
      n_queries: group.reduce((n, c) => n + c.n_queries, 0),
      score: complete ? 100 * mean(rel) : NaN,
      score_ci_low: NaN,
      score_ci_high: NaN,
      relative: complete ? mean(rel) : NaN,
      kept_ratio_achieved: avg("kept_ratio_achieved"),
      kv_bytes_held: avg("kv_bytes_held"),
      kv_bytes_full: avg("kv_bytes_full"),
      prefill_ms: avg("prefill_ms"),
      decode_ms_per_token: avg("decode_ms_per_token"),
      scoring_ms: avg("scoring_ms"),
      selection_ms: avg("selection_ms"),
    });
  }
  const order = (c: CellSummary): string[] => [
    c.scope,
    c.model,
    c.task,
    c.protocol,
    c.method,
    c.params,
    c.budget_kind,
  ];
  return [...cells, ...averages].sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    for (let i = 0; i < x.length; i++) {
      // Digit runs as numbers: "vt (512 tokens)" before "vt (2048 tokens)".
      const d = x[i].localeCompare(y[i], "en", { numeric: true });
      if (d !== 0) return d;
    }
    return b.budget - a.budget;
  });
}

/**
 * Where one task holds cells under several option sets, append to each cell's task the options
 * that differ between them, the context length asked first (`vt (4096 tokens, seed=1)`), so
 * that no two cells of a chart or table read alike and each compares with the full cache of its
 * own variant.
 */
function labelTaskVariants(cells: CellSummary[]): void {
  const parsed = (text: string): Record<string, unknown> => text === "" ? {} : JSON.parse(text);
  for (const group of groupBy(cells, (c) => c.task).values()) {
    const variants = [...new Set(group.map((c) => c.task_options))].map(parsed);
    if (variants.length < 2) continue;
    const keys = [...new Set(variants.flatMap((v) => Object.keys(v)))].sort(targetTokensFirst)
      .filter((k) => new Set(variants.map((v) => JSON.stringify(v[k] ?? null))).size > 1);
    for (const c of group) {
      const options = parsed(c.task_options);
      const shown = keys.map((k) =>
        k === "targetTokens" && typeof options[k] === "number"
          ? `${options[k]} tokens`
          : `${k}=${JSON.stringify(options[k] ?? null)}`
      );
      c.task = `${c.task} (${shown.length > 0 ? shown.join(", ") : "options unrecorded"})`;
    }
  }
}

function targetTokensFirst(a: string, b: string): number {
  if (a === b) return 0;
  if (a === "targetTokens" || b === "targetTokens") return a === "targetTokens" ? -1 : 1;
  return a < b ? -1 : 1;
}

/** cells.csv text (with header); NaN is written as an empty field. */
export function cellsToCsv(cells: readonly CellSummary[]): string {
  const records = cells.map((c) =>
    CELL_COLUMNS.map((k) => {
      const v = c[k];
      return typeof v === "number" && !Number.isFinite(v) ? "" : v;
    })
  );
  return stringify([CELL_COLUMNS as string[], ...records]);
}

function hashSeed(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
