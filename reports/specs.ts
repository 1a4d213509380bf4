/**
 * Vega-Lite specs of a run's report, built from the aggregated cells alone. Every spec carries
 * its data inline (`data.values`), so rendering it never fetches anything.
 *
 * @module
 */

import type { CellSummary } from "../sweep/aggregate.ts";

/** A Vega-Lite spec (plain JSON). */
// deno-lint-ignore no-explicit-any
export type VegaLiteSpec = Record<string, any>;

/** One chart of the report. */
export interface ChartSpec {
  /** File-name-safe id (the SVG is written as `<id>.svg`). */
  id: string;
  title: string;
  /** What a reader should take from the chart, shown under it. */
  caption: string;
  spec: VegaLiteSpec;
}

const WIDTH = 260;
const HEIGHT = 180;

function budgetAxisTitle(cells: readonly CellSummary[]): string {
  return cells.some((c) => c.budget_kind === "entries_per_head")
    ? "KV budget (kept ratio or entries per head)"
    : "kept ratio r (1.0 = full cache)";
}

function methodLabel(c: CellSummary): string {
  return c.params === "{}" || c.params === "" ? c.method : `${c.method} ${c.params}`;
}

function points(cells: readonly CellSummary[]): Record<string, unknown>[] {
  return cells.map((c) => ({
    method: methodLabel(c),
    task: c.task,
    budget: c.budget,
    score: c.score,
    low: Number.isFinite(c.score_ci_low) ? c.score_ci_low : c.score,
    high: Number.isFinite(c.score_ci_high) ? c.score_ci_high : c.score,
    relative: Number.isFinite(c.relative) ? 100 * c.relative : null,
    n: c.n_samples,
    prefill_ms: c.prefill_ms,
    decode_ms_per_token: c.decode_ms_per_token,
    kv_fraction: c.kv_bytes_full > 0 ? c.kv_bytes_held / c.kv_bytes_full : null,
    scoring_ms: c.scoring_ms,
    selection_ms: c.selection_ms,
  }));
}

const methodColor = { field: "method", type: "nominal", title: "method" };

/** Score vs kept ratio, one panel per task, one line per method, with CI bands. */
export function scoreVsBudget(cells: readonly CellSummary[]): ChartSpec {
  const data = points(cells.filter((c) => c.scope === "task"));
  const x = { field: "budget", type: "quantitative", title: budgetAxisTitle(cells) };
  return {
    id: "score_vs_budget",
    title: "Score vs KV budget, per task",
    caption: "Mean score over samples; bands are 95 % bootstrap intervals over samples.",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: { values: data },
      facet: { field: "task", type: "nominal", title: null },
      columns: 3,
      spec: {
        width: WIDTH,
        height: HEIGHT,
        layer: [
          {
            mark: { type: "errorband", opacity: 0.2 },
            encoding: {
              x,
              y: { field: "low", type: "quantitative", title: "score" },
              y2: { field: "high" },
              color: methodColor,
            },
          },
          {
            mark: { type: "line", point: true },
            encoding: {
              x,
              y: { field: "score", type: "quantitative", title: "score" },
              color: methodColor,
              tooltip: [
                { field: "method" },
                { field: "budget" },
                { field: "score", format: ".3f" },
                { field: "n", title: "samples" },
              ],
            },
          },
        ],
      },
      resolve: { scale: { y: "independent" } },
    },
  };
}

/** Relative performance (score / full) averaged over tasks, ×100: the headline. */
export function relativeVsBudget(cells: readonly CellSummary[]): ChartSpec {
  const data = points(cells.filter((c) => c.scope === "average" && Number.isFinite(c.relative)));
  return {
    id: "relative_vs_budget",
    title: "Relative performance averaged over tasks",
    caption:
      "Per task, score / full-cache score on the same model and protocol; averaged over tasks, ×100.",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: { values: data },
      width: 2 * WIDTH,
      height: 1.4 * HEIGHT,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "budget", type: "quantitative", title: budgetAxisTitle(cells) },
        y: { field: "relative", type: "quantitative", title: "relative performance (%)" },
        color: methodColor,
        tooltip: [{ field: "method" }, { field: "budget" }, { field: "relative", format: ".1f" }],
      },
    },
  };
}

/** The budget the heatmap shows: the requested one, else the smallest budget below 1 that most cells share. */
export function heatmapBudget(cells: readonly CellSummary[], requested?: number): number | null {
  const budgets = [...new Set(cells.filter((c) => c.scope === "task").map((c) => c.budget))];
  if (requested !== undefined && budgets.includes(requested)) return requested;
  const below = budgets.filter((b) => b < 1).sort((a, b) => a - b);
  if (below.length === 0) return budgets.length > 0 ? Math.min(...budgets) : null;
  return below.find((b) => Math.abs(b - 0.3) < 1e-9) ?? below[Math.floor(below.length / 2)];
}

/** Task × method heatmap of relative performance at one budget. */
export function taskMethodHeatmap(cells: readonly CellSummary[], budget: number): ChartSpec {
  const data = points(cells.filter((c) => c.scope === "task" && c.budget === budget));
  const value = data.some((d) => d.relative !== null) ? "relative" : "score";
  return {
    id: "task_method_heatmap",
    title: `Task × method at budget ${budget}`,
    caption: value === "relative"
      ? "Relative performance (% of the full cache) per task."
      : "Mean score per task (no full-cache cells to normalise by).",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: { values: data },
      width: { step: 70 },
      height: { step: 26 },
      encoding: {
        x: { field: "method", type: "nominal", title: null, axis: { labelAngle: -30 } },
        y: { field: "task", type: "nominal", title: null },
      },
      layer: [
        {
          mark: "rect",
          encoding: {
            color: {
              field: value,
              type: "quantitative",
              title: value === "relative" ? "% of full" : "score",
              scale: { scheme: "viridis" },
            },
          },
        },
        {
          mark: { type: "text", fontSize: 10 },
          encoding: {
            text: {
              field: value,
              type: "quantitative",
              format: value === "relative" ? ".0f" : ".2f",
            },
            color: { value: "white" },
          },
        },
      ],
    },
  };
}

function efficiencyChart(
  cells: readonly CellSummary[],
  field: "prefill_ms" | "decode_ms_per_token" | "kv_fraction",
  title: string,
  axis: string,
): ChartSpec {
  const data = points(cells.filter((c) => c.scope === "average"));
  return {
    id: `efficiency_${field}`,
    title,
    caption: "Averaged over the cells of each method and budget.",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: { values: data },
      width: WIDTH,
      height: HEIGHT,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "budget", type: "quantitative", title: budgetAxisTitle(cells) },
        y: { field, type: "quantitative", title: axis },
        color: methodColor,
      },
    },
  };
}

/** Efficiency: prefill time, decode time per token and KV bytes held (physical) vs budget. */
export function efficiency(cells: readonly CellSummary[]): ChartSpec[] {
  return [
    efficiencyChart(cells, "prefill_ms", "Prefill time", "prefill (ms)"),
    efficiencyChart(cells, "decode_ms_per_token", "Decode time per token", "decode (ms/token)"),
    efficiencyChart(cells, "kv_fraction", "KV bytes held / full cache", "bytes held ÷ full"),
  ];
}

/** Scoring and selection time per method, next to prefill time. */
export function scoringOverhead(cells: readonly CellSummary[]): ChartSpec {
  const byMethod = new Map<string, { scoring: number[]; selection: number[]; prefill: number[] }>();
  for (const c of cells.filter((c) => c.scope === "task")) {
    const key = methodLabel(c);
    const m = byMethod.get(key) ?? { scoring: [], selection: [], prefill: [] };
    m.scoring.push(c.scoring_ms);
    m.selection.push(c.selection_ms);
    m.prefill.push(c.prefill_ms);
    byMethod.set(key, m);
  }
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const data = [...byMethod].flatMap(([method, m]) => [
    { method, part: "prefill", ms: avg(m.prefill) },
    { method, part: "scoring", ms: avg(m.scoring) },
    { method, part: "selection + compaction", ms: avg(m.selection) },
  ]);
  return {
    id: "scoring_overhead",
    title: "Scoring overhead per method",
    caption:
      "Mean time per sample: the prefill, the method's extra scoring work, and selection with compaction.",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: { values: data },
      width: 2 * WIDTH,
      height: { step: 14 },
      mark: "bar",
      encoding: {
        y: { field: "method", type: "nominal", title: null },
        yOffset: { field: "part" },
        x: { field: "ms", type: "quantitative", title: "ms per sample" },
        color: { field: "part", type: "nominal", title: null },
      },
    },
  };
}

/** Every chart of a report, in reading order. */
export function reportCharts(
  cells: readonly CellSummary[],
  options: { heatmapBudget?: number } = {},
): ChartSpec[] {
  const charts = [relativeVsBudget(cells), scoreVsBudget(cells)];
  const budget = heatmapBudget(cells, options.heatmapBudget);
  if (budget !== null) charts.push(taskMethodHeatmap(cells, budget));
  charts.push(...efficiency(cells), scoringOverhead(cells));
  return charts;
}
