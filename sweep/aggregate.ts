/**
 * Aggregation of result rows into cells.csv, the way the field reports: a sample's score is the
 * mean over its queries, a cell's score the mean over samples (spec §6.5) with a 95 % bootstrap
 * confidence interval and its sample count, and the relative performance of a cell is its
 * score over the `full` cache's score on the same model, task and protocol.
 *
 * Cells of different series never merge: a series is a model, protocol, method with its
 * params, selection policy, safeguard, seed and run settings (window, sampling, the method's
 * version and files: {@linkcode seriesKey}). Cells of one task never merge either: a task run
 * under other options, another task version or other data files is a variant of its own, labelled
 * by what tells it apart ({@linkcode CellSummary.task}). Averages are per series,
 * budget and suite (needle retrieval and math reasoning do not average into one number): one
 * over the suite's tasks, and one per context length asked (RULER's headline is the mean of its
 * tasks at each length). Each holds the relative performance averaged over the tasks, ×100,
 * over the tasks where the full cache scores above 0 (the others have no relative figure for
 * any method), as FastKVzip's headline does (spec §6.5), and beside it the mean score over the
 * tasks. Tasks whose adapter opts out of averages (`averaged: false`: MRCR) keep their own cells
 * only.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { seededRandom } from "../kernels/random.ts";
import { taskAveraged } from "../tasks/registry.ts";
import { SUITES } from "../tasks/types.ts";
import type { ResultRow } from "./store.ts";

/** One aggregate: a cell on one task, or a series and budget averaged over a suite's tasks. */
export interface CellSummary {
  /**
   * "task": one cell; "average": the series at one budget averaged over the tasks of one suite,
   * at one context length or (`target_tokens` NaN) over all of them.
   */
  scope: "task" | "average";
  model: string;
  method: string;
  params: string;
  /** The selection policy that ran (the rows' `policy`). */
  policy: string;
  /** The AdaKV safeguard α that ran; NaN when none (an empty field in cells.csv). */
  safeguard: number;
  protocol: string;
  /** The sweep's seed (the rows' `seed`: methods' randomness). */
  seed: number;
  /**
   * The run settings of the series (the rows' `settings`: window, sampling, method version and
   * files, as canonical JSON of those that differ from a plain run; "" when none does).
   */
  settings: string;
  suite: string;
  /**
   * The task, or "(average)". When the rows hold one task under several option sets (two
   * context lengths, two task seeds), task versions or data files, each cell's task names what
   * tells it apart: `niah_single_1 (4096 tokens)`, `vt (version 2)`,
   * `longbench_file (data 9f86d081)`.
   */
  task: string;
  /** The cell's task options as canonical JSON (the rows' `task_options`; "" for averages). */
  task_options: string;
  /** The cell's task version (the rows' `task_version`; NaN for averages and old rows). */
  task_version: number;
  /**
   * The SHA-256 of the files the cell's task read (the rows' `task_data`; "" for averages and
   * tasks that read none).
   */
  task_data: string;
  /**
   * The context length asked, in tokens (the task options' `targetTokens`): a task cell's, or
   * the length an average runs at. NaN for a task without one and for a suite's overall
   * average.
   */
  target_tokens: number;
  budget_kind: string;
  budget: number;
  n_samples: number;
  n_queries: number;
  /** Mean score (task scope) or mean relative performance ×100 (average scope). */
  score: number;
  /** 95 % bootstrap interval of `score` (task scope; NaN for averages). */
  score_ci_low: number;
  score_ci_high: number;
  /**
   * The mean score, on the metric's scale: the cell's `score` (task scope), or the mean of the
   * averaged tasks' scores (average scope; NaN unless the series has a cell on every one).
   */
  absolute: number;
  /** score / full's score on the same model, task and protocol (NaN without a full cell). */
  relative: number;
  /**
   * Mean reference NLL per token (the rows' `answer_nll`) over the rows that have one: a task
   * cell's, or the mean of the averaged tasks' (NaN unless every one has it).
   */
  answer_nll: number;
  kept_ratio_achieved: number;
  kv_bytes_held: number;
  kv_bytes_full: number;
  prefill_ms: number;
  decode_ms_per_token: number;
  scoring_ms: number;
  selection_ms: number;
}

/** The fields of a cell that make its results incomparable with another series'. */
export type SeriesFields = Pick<
  CellSummary,
  "model" | "protocol" | "method" | "params" | "policy" | "safeguard" | "seed" | "settings"
>;

/**
 * The series a cell belongs to: model, protocol, method, params, policy, safeguard, seed and run
 * settings. Cells of two series are never averaged together, drawn as one line or listed as one
 * row.
 *
 * @example
 * ```ts
 * seriesKey(cell) === seriesKey(other); // same model, protocol, method, …, seed and settings
 * ```
 */
export function seriesKey(c: SeriesFields): string {
  const safeguard = Number.isNaN(c.safeguard) ? "" : String(c.safeguard);
  return [c.model, c.protocol, c.method, c.params, c.policy, safeguard, String(c.seed), c.settings]
    .join("\u0000");
}

/** The columns of cells.csv, in order. */
export const CELL_COLUMNS: readonly (keyof CellSummary)[] = [
  "scope",
  "model",
  "method",
  "params",
  "policy",
  "safeguard",
  "protocol",
  "seed",
  "settings",
  "suite",
  "task",
  "task_options",
  "task_version",
  "task_data",
  "target_tokens",
  "budget_kind",
  "budget",
  "n_samples",
  "n_queries",
  "score",
  "score_ci_low",
  "score_ci_high",
  "absolute",
  "relative",
  "answer_nll",
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

/** The method every other is compared with: the full cache. */
export const FULL = "full";

/** Options of {@linkcode aggregate}. */
export interface AggregateOptions {
  /**
   * Whether a task's cells enter its suite's averages, by registered task name; default the
   * task registry's {@linkcode taskAveraged} (every task but those that opt out, such as MRCR).
   */
  averaged?: (task: string) => boolean;
}

/**
 * Aggregate rows into per-task cells and averages: per series, budget and suite, one over the
 * suite's tasks and one per context length asked.
 */
export function aggregate(
  rows: readonly ResultRow[],
  options: AggregateOptions = {},
): CellSummary[] {
  const averaged = options.averaged ?? taskAveraged;
  const cells: CellSummary[] = [];
  for (const cellRows of groupBy(rows, (r) => r.cell_id).values()) {
    const first = cellRows[0];
    const bySample = groupBy(cellRows, (r) => r.sample_id);
    const sampleScores = [...bySample.values()].map((qs) => mean(qs.map((q) => q.score)));
    const [low, high] = bootstrapInterval(sampleScores, { seed: hashSeed(first.cell_id) });
    const avg = (c: keyof ResultRow) => mean(cellRows.map((r) => r[c] as number));
    // One cell's rows share these (they are in its id); rows upgraded from an older rows.csv
    // may lack them, so the cell takes the value any of its rows records.
    const recorded = (c: "settings" | "task_data") => cellRows.find((r) => r[c] !== "")?.[c] ?? "";
    cells.push({
      scope: "task",
      model: first.model,
      method: first.method,
      params: first.params,
      policy: first.policy,
      safeguard: first.safeguard,
      protocol: first.protocol,
      seed: first.seed,
      settings: recorded("settings"),
      suite: first.suite,
      task: first.task,
      task_options: first.task_options,
      task_version: first.task_version,
      task_data: recorded("task_data"),
      target_tokens: targetTokens(first.task_options),
      budget_kind: first.budget_kind,
      budget: first.budget,
      n_samples: bySample.size,
      n_queries: cellRows.length,
      score: mean(sampleScores),
      score_ci_low: low,
      score_ci_high: high,
      absolute: mean(sampleScores),
      relative: NaN,
      answer_nll: mean(cellRows.map((r) => r.answer_nll).filter(Number.isFinite)),
      kept_ratio_achieved: avg("kept_ratio_achieved"),
      kv_bytes_held: avg("kv_bytes_held"),
      kv_bytes_full: avg("kv_bytes_full"),
      prefill_ms: avg("prefill_ms"),
      decode_ms_per_token: avg("decode_ms_per_token"),
      scoring_ms: avg("scoring_ms"),
      selection_ms: avg("selection_ms"),
    });
  }
  // Asked by task name, before labels add the options that tell a task's variants apart.
  const averagedCells = cells.filter((c) => averaged(c.task));
  labelTaskVariants(cells);
  // Relative performance against the full cache of the same model, task variant, protocol and
  // sampling: at the same seed where the run has one there, else at any (the full cache never
  // uses the seed, and none of the other run settings either).
  const taskKey = (c: CellSummary) =>
    [c.model, c.task, c.protocol, samplingOf(c.settings)].join("\u0000");
  const fullAtSeed = new Map<string, number>();
  const fullAtAnySeed = new Map<string, number>();
  for (const c of cells) {
    if (c.method !== FULL) continue;
    fullAtSeed.set(`${taskKey(c)}\u0000${c.seed}`, c.score);
    if (!fullAtAnySeed.has(taskKey(c))) fullAtAnySeed.set(taskKey(c), c.score);
  }
  for (const c of cells) {
    const full = fullAtSeed.get(`${taskKey(c)}\u0000${c.seed}`) ?? fullAtAnySeed.get(taskKey(c));
    c.relative = full === undefined || full === 0 ? NaN : c.score / full;
  }
  // What an average runs over, per scope (model, protocol, suite, and one length or all): the
  // averaged tasks the run holds there (task variants, by label), and those on which the full
  // cache scores above 0 (a task the model never solves has no relative figure for any method).
  const scopeKey = (c: CellSummary, length: number) =>
    [c.model, c.protocol, c.suite, length].join("\u0000");
  const lengthsOf = (c: CellSummary) =>
    Number.isFinite(c.target_tokens) ? [NaN, c.target_tokens] : [NaN];
  const scopes = new Map<string, { tasks: Set<string>; solved: Set<string> }>();
  const groups = new Map<string, { length: number; cells: CellSummary[] }>();
  for (const c of averagedCells) {
    for (const length of lengthsOf(c)) {
      const key = scopeKey(c, length);
      const scope = scopes.get(key) ?? { tasks: new Set(), solved: new Set() };
      scopes.set(key, scope);
      scope.tasks.add(c.task);
      if (c.method === FULL && c.score > 0) scope.solved.add(c.task);
      const groupKey = [seriesKey(c), c.budget_kind, c.budget, c.suite, length].join("\u0000");
      const group = groups.get(groupKey) ?? { length, cells: [] };
      groups.set(groupKey, group);
      group.cells.push(c);
    }
  }
  const averages: CellSummary[] = [];
  for (const { length, cells: group } of groups.values()) {
    const first = group[0];
    const scope = scopes.get(scopeKey(first, length))!;
    // Defined only when the group has every such task, so all series average the same tasks.
    const related = group.filter((c) => scope.solved.has(c.task) && Number.isFinite(c.relative));
    const rel = related.map((c) => c.relative);
    const relComplete = scope.solved.size > 0 &&
      new Set(related.map((c) => c.task)).size === scope.solved.size;
    const absComplete = new Set(group.map((c) => c.task)).size === scope.tasks.size;
    const avg = (k: keyof CellSummary) => mean(group.map((c) => c[k] as number));
    averages.push({
      ...first,
      scope: "average",
      task: "(average)",
      task_options: "",
      task_version: NaN,
      task_data: "",
      target_tokens: length,
      n_samples: group.reduce((n, c) => n + c.n_samples, 0),
      n_queries: group.reduce((n, c) => n + c.n_queries, 0),
      score: relComplete ? 100 * mean(rel) : NaN,
      score_ci_low: NaN,
      score_ci_high: NaN,
      absolute: absComplete ? avg("score") : NaN,
      relative: relComplete ? mean(rel) : NaN,
      answer_nll: absComplete ? avg("answer_nll") : NaN,
      kept_ratio_achieved: avg("kept_ratio_achieved"),
      kv_bytes_held: avg("kv_bytes_held"),
      kv_bytes_full: avg("kv_bytes_full"),
      prefill_ms: avg("prefill_ms"),
      decode_ms_per_token: avg("decode_ms_per_token"),
      scoring_ms: avg("scoring_ms"),
      selection_ms: avg("selection_ms"),
    });
  }
  const series = (c: CellSummary) => [
    c.method,
    c.params,
    c.policy,
    c.safeguard,
    c.seed,
    c.settings,
  ];
  // Averages first (per model, protocol, suite, then the suite's overall before its lengths),
  // then task cells; the largest budget first.
  const order = (c: CellSummary): (string | number)[] =>
    c.scope === "average"
      ? [0, c.model, c.protocol, suiteRank(c.suite), c.suite, c.target_tokens, ...series(c)]
      : [1, c.model, c.task, c.protocol, ...series(c)];
  return [...averages, ...cells].sort((a, b) =>
    compareKeys([...order(a), a.budget_kind, -a.budget], [...order(b), b.budget_kind, -b.budget])
  );
}

/** A suite's place in reading order ({@linkcode SUITES}'s); suites it does not list come after. */
export function suiteRank(suite: string): number {
  const i = (SUITES as readonly string[]).indexOf(suite);
  return i < 0 ? SUITES.length : i;
}

/**
 * Element by element: numbers numerically (NaN first), text with digit runs as numbers
 * ("vt (512 tokens)" before "vt (2048 tokens)").
 */
function compareKeys(x: readonly (string | number)[], y: readonly (string | number)[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const [a, b] = [x[i], y[i]];
    let d: number;
    if (typeof a === "number" && typeof b === "number") {
      d = Number.isNaN(a) ? (Number.isNaN(b) ? 0 : -1) : Number.isNaN(b) ? 1 : a - b;
    } else d = String(a).localeCompare(String(b), "en", { numeric: true });
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** The context length a cell's task options ask for, in tokens; NaN when they ask none. */
function targetTokens(taskOptions: string): number {
  if (taskOptions === "") return NaN;
  const value = (JSON.parse(taskOptions) as Record<string, unknown>).targetTokens;
  return typeof value === "number" ? value : NaN;
}

/**
 * The sampling settings in a cell's run settings, as their canonical JSON ("" for greedy
 * answers): the only run setting that changes what the full cache answers.
 */
function samplingOf(settings: string): string {
  if (settings === "") return "";
  const sampling = (JSON.parse(settings) as Record<string, unknown>).sampling;
  return sampling === undefined ? "" : JSON.stringify(sampling);
}

/**
 * Where one task holds cells under several variants (option sets, task versions, data files),
 * append to each cell's task what differs between them: the options first, the context length
 * asked before the others, then the version and the data's digest (its first 8 hex digits per
 * file): `vt (4096 tokens, seed=1)`, `vt (version 2)`, `longbench_file (data 9f86d081)`. So no two
 * cells of a chart or table read alike, and each compares with the full cache of its own variant.
 */
function labelTaskVariants(cells: CellSummary[]): void {
  const parsed = (text: string): Record<string, unknown> => text === "" ? {} : JSON.parse(text);
  const variant = (c: CellSummary) =>
    JSON.stringify([c.task_options, String(c.task_version), c.task_data]);
  for (const group of groupBy(cells, (c) => c.task).values()) {
    const variants = [...new Set(group.map(variant))].map((v) => JSON.parse(v) as string[]);
    if (variants.length < 2) continue;
    const options = variants.map(([o]) => parsed(o));
    const keys = [...new Set(options.flatMap((v) => Object.keys(v)))].sort(targetTokensFirst)
      .filter((k) => new Set(options.map((v) => JSON.stringify(v[k] ?? null))).size > 1);
    const versions = new Set(variants.map(([, v]) => v)).size > 1;
    const data = new Set(variants.map(([, , d]) => d)).size > 1;
    for (const c of group) {
      const own = parsed(c.task_options);
      const shown = [
        ...keys.map((k) =>
          k === "targetTokens" && typeof own[k] === "number"
            ? `${own[k]} tokens`
            : `${k}=${JSON.stringify(own[k] ?? null)}`
        ),
        ...(versions
          ? [Number.isNaN(c.task_version) ? "version unrecorded" : `version ${c.task_version}`]
          : []),
        ...(data ? [dataPhrase(c.task_data)] : []),
      ];
      c.task = `${c.task} (${shown.length > 0 ? shown.join(", ") : "options unrecorded"})`;
    }
  }
}

/** A task's data digest in a label: `data 9f86d081`, `data 9f86d081+1a2b3c4d` for two files. */
function dataPhrase(digests: string): string {
  if (digests === "") return "no data digest";
  return `data ${digests.split(",").map((d) => d.slice(0, 8)).join("+")}`;
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
