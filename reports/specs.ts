/**
 * Vega-Lite specs of a run's report, built from the aggregated cells alone. Every spec carries
 * its data inline (`data.values`), so rendering it never fetches anything.
 *
 * Every chart colours series the same way: one scale (see {@linkcode methodColors}) whose
 * domain is the report's series order — `full` first, then the best relative performance
 * first — and whose colours are fixed per registered method, so a method keeps its colour from
 * one report to the next. A series is a method with its params, selection policy, safeguard, seed
 * and run settings ({@linkcode seriesLabeler} names it); results of different models or protocols
 * are drawn in panels of their own, named by them, whenever a run holds more than one.
 *
 * @module
 */

import { type CellSummary, FULL, suiteRank } from "../sweep/aggregate.ts";
import { BUDGET_KINDS, UNBOUNDED_BUDGET } from "../sweep/store.ts";

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

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const WIDTH = 240;
const HEIGHT = 150;

/** Colours of the registered methods (Tableau 10, `full` as a neutral reference). */
const KNOWN_COLORS: Record<string, string> = {
  full: "#3a3a3a",
  kvzip: "#4e79a7",
  gated: "#76b7b2",
  "expected-attention": "#b07aa1",
  snapkv: "#59a14f",
  pyramidkv: "#c9a227",
  h2o: "#f28e2b",
  tova: "#9c755f",
  streamingllm: "#e15759",
  knorm: "#ff9da7",
  random: "#a5a5a5",
};

/** Colours for methods not listed above, and for a second variant of a listed one. */
const SPARE_COLORS = [
  "#17becf",
  "#8cd17d",
  "#d37295",
  "#499894",
  "#b6992d",
  "#a0cbe8",
  "#ffbe7d",
  "#79706e",
  "#d7b5a6",
  "#fabfd2",
  "#86bcb6",
  "#bcbd22",
];

/** Shared look: font sizes, light grid, thicker lines. */
const CONFIG = {
  font: "DejaVu Sans, Verdana, sans-serif",
  axis: {
    labelFontSize: 11,
    titleFontSize: 11,
    titleFontWeight: "normal",
    titleColor: "#333",
    gridColor: "#ececec",
    domainColor: "#888",
    tickColor: "#888",
  },
  // Without a canvas, Vega estimates text widths generously: room for a series label with its
  // policy and safeguard.
  legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 400, symbolStrokeWidth: 2.5 },
  header: { labelFontSize: 12, labelFontWeight: "bold", labelColor: "#333" },
  title: { fontSize: 12, fontWeight: "bold", anchor: "start", color: "#333" },
  view: { stroke: "#d9d9d9" },
  line: { strokeWidth: 2 },
  point: { size: 28, filled: true },
};

/** A method's label: its id, with its parameters when it has any. */
export function methodLabel(c: Pick<CellSummary, "method" | "params">): string {
  return c.params === "{}" || c.params === "" ? c.method : `${c.method} ${c.params}`;
}

/** Names a cell's series in legends, axes and table rows. */
export type SeriesLabeler = (c: CellSummary) => string;

/**
 * The series labeler of a report: a cell's {@linkcode methodLabel}, then its selection policy
 * (with its safeguard) where the report holds the method with the same params under more than
 * one, then its run settings where the report holds the method with the same params under
 * several (those that differ between them and are not a plain run's, {@linkcode settingsPhrases}),
 * then its seed where the report holds more than one seed: `snapkv`,
 * `snapkv · global + safeguard 0.2 · seed 1`, or `snapkv` beside `snapkv · window 4096` and
 * `snapkv · temperature 0.7`. Model and protocol are left out; charts draw them in panels of
 * their own ({@linkcode groupLabeler}).
 */
export function seriesLabeler(cells: readonly CellSummary[]): SeriesLabeler {
  const selection = (c: CellSummary) =>
    Number.isNaN(c.safeguard) ? c.policy : `${c.policy} + safeguard ${c.safeguard}`;
  const selections = new Map<string, Set<string>>();
  const settings = new Map<string, Set<string>>();
  for (const c of cells) {
    const label = methodLabel(c);
    selections.set(label, (selections.get(label) ?? new Set()).add(selection(c)));
    settings.set(label, (settings.get(label) ?? new Set()).add(c.settings));
  }
  // Per method label, the settings keys whose words differ between its series.
  const differing = new Map<string, string[]>();
  for (const [label, variants] of settings) {
    if (variants.size < 2) continue;
    const phrases = [...variants].map(settingsPhrases);
    const keys = [...new Set(phrases.flatMap((p) => Object.keys(p)))].sort()
      .filter((k) => new Set(phrases.map((p) => p[k])).size > 1);
    // Settings that differ in no word (written by hand) are named as the rows hold them.
    differing.set(label, keys.length > 0 ? keys : [RAW_SETTINGS]);
  }
  const seeds = new Set(cells.map((c) => c.seed)).size > 1;
  return (c) => {
    const label = methodLabel(c);
    const phrases = settingsPhrases(c.settings);
    const named = (differing.get(label) ?? []).flatMap((k) =>
      k === RAW_SETTINGS
        ? [`settings ${c.settings === "" ? "{}" : c.settings}`]
        : phrases[k] === undefined || phrases[k] === PLAIN_SETTINGS[k]
        ? []
        : [phrases[k]]
    );
    return [
      label,
      ...((selections.get(label)?.size ?? 0) > 1 ? [selection(c)] : []),
      ...named,
      ...(seeds ? [`seed ${c.seed}`] : []),
    ].join(" · ");
  };
}

/** The label part for settings that differ in no word: the rows' text itself. */
const RAW_SETTINGS = "";

/** The run settings a series label can name, with what a plain run has (a label leaves out). */
const PLAIN_SETTINGS: Record<string, string> = {
  artifacts: "no method files recorded",
  methodVersion: "unversioned",
  sampling: "greedy",
  window: "window spec",
};

/**
 * A series' run settings (the rows' `settings`) in words, by key, every key a label can name
 * included: what a plain run has where the settings leave it out. `window 4096` or
 * `window spec`; `temperature 0.6, top-p 0.95` (top-p and top-k where they filter) or `greedy`;
 * `version 2` or `unversioned`; the method's files as the sweep identified them (`gates
 * sha256:…`); any other key as `key=value`.
 *
 * @example
 * ```ts
 * settingsPhrases('{"window":4096}').window; // "window 4096"
 * settingsPhrases("").sampling; // "greedy"
 * ```
 */
export function settingsPhrases(settings: string): Record<string, string> {
  const phrases = { ...PLAIN_SETTINGS };
  const parsed = settings === "" ? {} : JSON.parse(settings) as Record<string, unknown>;
  for (const [key, value] of Object.entries(parsed)) {
    if (key === "window") phrases.window = `window ${value}`;
    else if (key === "methodVersion") phrases.methodVersion = `version ${value}`;
    else if (key === "artifacts") phrases.artifacts = String(value);
    else if (key === "sampling") phrases.sampling = samplingPhrase(value);
    else phrases[key] = `${key}=${JSON.stringify(value)}`;
  }
  return phrases;
}

/** Sampling settings in words: the temperature, then top-p and top-k where they filter. */
function samplingPhrase(value: unknown): string {
  const { temperature, topP, topK } = value as {
    temperature: number;
    topP?: number;
    topK?: number;
  };
  return [
    `temperature ${temperature}`,
    ...(topP !== undefined && topP < 1 ? [`top-p ${topP}`] : []),
    ...(topK !== undefined && topK > 0 ? [`top-k ${topK}`] : []),
  ].join(", ");
}

/**
 * Names a cell's model and protocol where the report holds more than one of either ("" where it
 * holds one of each), and what its budgets count where the report holds budgets of more than
 * one kind (kept ratios under one protocol, entries per head under decode; or kept ratios and
 * context tokens from two sweeps into one directory): the panels that keep incomparable results
 * apart, each with an x axis of its own. A model is named by its directory's last part when
 * that tells the report's models apart, by its path otherwise.
 */
export function groupLabeler(cells: readonly CellSummary[]): SeriesLabeler {
  const models = [...new Set(cells.map((c) => c.model))];
  const protocols = new Set(cells.map((c) => c.protocol)).size > 1;
  const kinds = mixedKinds(cells);
  const short = (model: string) => model.replace(/\/+$/, "").split("/").pop() || model;
  const unique = new Set(models.map(short)).size === models.length;
  return (c) =>
    [
      ...(models.length > 1 ? [unique ? short(c.model) : c.model] : []),
      ...(protocols ? [c.protocol] : []),
      ...(kinds ? [budgetKindTitle(c.budget_kind)] : []),
    ].join(" · ");
}

/** Whether one model and protocol holds cells of more than one budget kind. */
function mixesKindsInPanels(cells: readonly CellSummary[]): boolean {
  const kinds = new Map<string, Set<string>>();
  for (const c of cells) {
    const key = `${c.model}\u0000${c.protocol}`;
    kinds.set(key, (kinds.get(key) ?? new Set()).add(c.budget_kind));
  }
  return [...kinds.values()].some((k) => k.size > 1);
}

/**
 * What a budget kind counts, as axes and table headers name it: "kept ratio r", "context tokens
 * per KV head", "entries per KV head" (decode: their average over layers and heads).
 */
export function budgetKindTitle(kind: string): string {
  switch (kind) {
    case "kept_ratio":
      return "kept ratio r";
    case "context_tokens":
      return "context tokens per KV head";
    case "entries_per_head":
      return "entries per KV head";
    default:
      return kind === "" ? "budget" : kind;
  }
}

/**
 * Whether a cell's budget bounds the cache: a kept ratio below 1, or any absolute budget but
 * the full cache's {@linkcode UNBOUNDED_BUDGET}. (A token budget above a sample's context keeps
 * all of it; it still counts, as the run asked for it.)
 */
export function boundsCache(c: Pick<CellSummary, "budget_kind" | "budget">): boolean {
  return c.budget_kind === "kept_ratio" ? c.budget < 1 : c.budget !== UNBOUNDED_BUDGET;
}

/** The budget kinds a report holds, in {@linkcode BUDGET_KINDS} order (others after). */
function budgetKinds(cells: readonly CellSummary[]): string[] {
  const rank = (k: string) => {
    const i = (BUDGET_KINDS as readonly string[]).indexOf(k);
    return i < 0 ? BUDGET_KINDS.length : i;
  };
  return [...new Set(cells.map((c) => c.budget_kind))].sort((a, b) =>
    rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0)
  );
}

/** A facet header that puts each part of a panel's name (model, protocol, task) on its line. */
const PANEL_HEADER = { labelExpr: "split(datum.label, ' · ')" };

/** A row-facet header above each model and protocol's rows, left-aligned. */
const GROUP_HEADER = {
  labelAngle: 0,
  labelOrient: "top",
  labelAnchor: "start",
  labelAlign: "left",
  labelFontSize: 12,
};

/** `group · name`, or `name` alone when the report has one group. */
function inGroup(group: string, name: string): string {
  return group === "" ? name : `${group} · ${name}`;
}

function mean(xs: readonly number[]): number {
  const finite = xs.filter((x) => Number.isFinite(x));
  return finite.length === 0 ? NaN : finite.reduce((a, b) => a + b, 0) / finite.length;
}

/**
 * The report's series order (by {@linkcode seriesLabeler} label): `full` first, then by
 * relative performance averaged over the budgets below 1 (each suite's overall average; best
 * first; by mean score when there is no full cache to compare with), then by name.
 */
export function methodOrder(cells: readonly CellSummary[]): string[] {
  const label = seriesLabeler(cells);
  const merit = new Map<string, { base: string; rel: number[]; score: number[] }>();
  for (const c of cells) {
    const m = merit.get(label(c)) ?? { base: c.method, rel: [], score: [] };
    if (boundsCache(c)) {
      if (c.scope === "average") {
        if (Number.isNaN(c.target_tokens)) m.rel.push(c.relative);
      } else m.score.push(c.score);
    }
    merit.set(label(c), m);
  }
  const key = (label: string) => {
    const m = merit.get(label)!;
    const rel = mean(m.rel);
    return Number.isFinite(rel) ? rel : Number.isFinite(mean(m.score)) ? mean(m.score) - 1e6 : -2e6;
  };
  return [...merit.keys()].sort((a, b) => {
    const fa = merit.get(a)!.base === "full", fb = merit.get(b)!.base === "full";
    if (fa !== fb) return fa ? -1 : 1;
    return key(b) - key(a) || (a < b ? -1 : a > b ? 1 : 0);
  });
}

/** The colour of each series label, in report order: fixed per method, spares for the rest. */
export function methodColors(cells: readonly CellSummary[]): Map<string, string> {
  const label = seriesLabeler(cells);
  const base = new Map(cells.map((c) => [label(c), c.method]));
  const colors = new Map<string, string>();
  const used = new Set<string>();
  const order = methodOrder(cells);
  for (const label of order) {
    const known = KNOWN_COLORS[base.get(label) ?? ""];
    if (known !== undefined && !used.has(known)) {
      colors.set(label, known);
      used.add(known);
    }
  }
  let spare = 0;
  for (const label of order) {
    if (colors.has(label)) continue;
    const free = SPARE_COLORS.filter((c) => !used.has(c));
    const color = free.length > 0 ? free[0] : SPARE_COLORS[spare++ % SPARE_COLORS.length];
    colors.set(label, color);
    used.add(color);
  }
  return colors;
}

/** The method colour encoding every chart shares. */
function methodColor(
  cells: readonly CellSummary[],
  legendColumns: number,
  orient: "top" | "right" = "top",
): VegaLiteSpec {
  const colors = methodColors(cells);
  const domain = [...colors.keys()];
  return {
    field: "method",
    type: "nominal",
    title: null,
    scale: { domain, range: domain.map((m) => colors.get(m)) },
    legend: {
      orient,
      direction: orient === "top" ? "horizontal" : "vertical",
      columns: orient === "top" ? Math.min(domain.length, legendColumns) : 1,
      symbolType: "stroke",
      symbolOpacity: 1,
      offset: orient === "top" ? 8 : 18,
      columnPadding: 14,
    },
  };
}

/** The budget axis's title; where the report holds several kinds, each panel's name says it. */
function budgetTitle(cells: readonly CellSummary[]): string {
  const kinds = budgetKinds(cells);
  if (kinds.length === 1 && kinds[0] === "kept_ratio") return "kept ratio r (1 = full cache)";
  if (kinds.length === 1) return budgetKindTitle(kinds[0]);
  return "KV budget (as each panel names it)";
}

/**
 * Whether a report's panels hold budgets of different kinds (kept ratios under one protocol,
 * entries per head under decode): each panel then gets its own x scale.
 */
function mixedKinds(cells: readonly CellSummary[]): boolean {
  return budgetKinds(cells).length > 1;
}

/**
 * The budget axis: ticks at the sweep's own budgets; a 0–1 scale for kept ratios; for absolute
 * budgets (context tokens or entries per head) a log scale where they span more than 8×, as
 * papers draw 128 … 2048 tokens.
 */
function budgetX(cells: readonly CellSummary[]): VegaLiteSpec {
  const budgets = [...new Set(cells.map((c) => c.budget))]
    .filter((b) => b !== UNBOUNDED_BUDGET)
    .sort((a, b) => a - b);
  const kinds = budgetKinds(cells);
  const ratios = kinds.length === 1 && kinds[0] === "kept_ratio";
  const absolute = !kinds.includes("kept_ratio");
  const log = absolute && budgets.length > 1 && budgets[budgets.length - 1] > 8 * budgets[0];
  // Panels of several kinds share the ticks: each panel's domain, not widened, keeps its own.
  const scale = ratios
    ? { domain: [0, 1], nice: false }
    : log
    ? { type: "log", nice: false }
    : mixedKinds(cells)
    ? { zero: false, nice: false }
    : { zero: false };
  return {
    field: "budget",
    type: "quantitative",
    title: budgetTitle(cells),
    scale,
    axis: { values: budgets, format: absolute ? "d" : ".2~f", grid: true },
  };
}

/**
 * The data of a chart: one point per cell, its series label in `method`, its model and protocol
 * in `group` ("" with one of each), computed over `all` so every chart names series alike.
 */
function points(
  cells: readonly CellSummary[],
  all: readonly CellSummary[],
): Record<string, unknown>[] {
  const label = seriesLabeler(all);
  const group = groupLabeler(all);
  return cells.map((c) => ({
    method: label(c),
    base: c.method,
    group: group(c),
    suite: c.suite,
    task: c.task,
    // No x for an unbounded budget (full while decoding): its dashed rule stands for it.
    budget: c.budget === UNBOUNDED_BUDGET ? null : c.budget,
    score: c.score,
    low: Number.isFinite(c.score_ci_low) ? c.score_ci_low : c.score,
    high: Number.isFinite(c.score_ci_high) ? c.score_ci_high : c.score,
    relative: Number.isFinite(c.relative) ? 100 * c.relative : null,
    answer_nll: Number.isFinite(c.answer_nll) ? c.answer_nll : null,
    n: c.n_samples,
    prefill_ms: c.prefill_ms,
    decode_ms_per_token: c.decode_ms_per_token,
    kv_fraction: c.kv_bytes_full > 0 ? c.kv_bytes_held / c.kv_bytes_full : null,
    scoring_ms: c.scoring_ms,
    selection_ms: c.selection_ms,
  }));
}

/**
 * The distinct values of `name` over `data`, ordered by group (as {@linkcode byNaturalOrder}),
 * then by `rank` and the value itself: the order of a chart's panels or rows.
 */
function panelOrder(
  data: readonly Record<string, unknown>[],
  name: (p: Record<string, unknown>) => string,
  rank: (p: Record<string, unknown>) => number = () => 0,
): string[] {
  const keys = new Map<string, [string, number]>();
  for (const p of data) keys.set(name(p), [p.group as string, rank(p)]);
  return [...keys.keys()].sort((a, b) => {
    const [ka, kb] = [keys.get(a)!, keys.get(b)!];
    return byNaturalOrder(ka[0], kb[0]) || ka[1] - kb[1] || byNaturalOrder(a, b);
  });
}

/**
 * What a report's charts separate besides their own panels: "" (one model and one protocol),
 * "model", "protocol" or "model and protocol", and "budget kind" where one protocol holds two.
 */
function groupNoun(cells: readonly CellSummary[]): string {
  return [
    ...(new Set(cells.map((c) => c.model)).size > 1 ? ["model"] : []),
    ...(new Set(cells.map((c) => c.protocol)).size > 1 ? ["protocol"] : []),
    ...(mixesKindsInPanels(cells) ? ["budget kind"] : []),
  ].join(" and ").replace(/ and (?=.* and )/, ", ");
}

/**
 * Score vs kept ratio, one panel per task (and model and protocol where the report holds
 * several), one line per series, with CI bands.
 */
export function scoreVsBudget(cells: readonly CellSummary[]): ChartSpec {
  const taskCells = cells.filter((c) => c.scope === "task");
  const data = points(taskCells, cells).map((p) => ({
    ...p,
    panel: inGroup(p.group as string, p.task as string),
  }));
  const x = budgetX(cells);
  const color = methodColor(cells, 8);
  const unit = taskCells.every((c) =>
    !(c.score_ci_low < 0) && !(c.score_ci_high > 1) && c.score >= 0 && c.score <= 1
  );
  const y = {
    field: "score",
    type: "quantitative",
    title: "score",
    scale: unit ? { domain: [0, 1] } : { zero: true },
    axis: { tickCount: 5 },
  };
  return {
    id: "score_vs_budget",
    title: `Score vs KV budget, per task${
      groupNoun(cells) === "" ? "" : ` and ${groupNoun(cells)}`
    }`,
    caption: "Mean score over samples; bands are 95 % bootstrap intervals over samples; " +
      "the dashed line is the full cache's score.",
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      data: { values: data },
      facet: {
        field: "panel",
        type: "nominal",
        title: null,
        sort: panelOrder(data, (p) => p.panel as string),
        header: PANEL_HEADER,
      },
      columns: 3,
      spec: {
        width: WIDTH,
        height: HEIGHT,
        layer: [
          {
            mark: { type: "errorband", opacity: 0.1 },
            encoding: {
              x,
              y: { ...y, field: "low" },
              y2: { field: "high" },
              color,
            },
          },
          {
            transform: [{ filter: "datum.base === 'full'" }],
            mark: { type: "rule", strokeDash: [5, 4], strokeWidth: 1.5 },
            encoding: { y, color },
          },
          {
            mark: { type: "line", point: true },
            encoding: {
              x,
              y,
              color,
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
      resolve: {
        scale: {
          y: unit ? "shared" : "independent",
          ...(mixedKinds(cells) ? { x: "independent" } : {}),
        },
      },
    },
  };
}

/**
 * The points of a per-suite average chart: each suite's overall average (no single length)
 * where `value` is finite, panelled by model and protocol (as {@linkcode groupLabeler}) and by
 * suite where the report holds several.
 */
function suiteAveragePoints(
  cells: readonly CellSummary[],
  value: (c: CellSummary) => number,
): { data: Record<string, unknown>[]; panels: string[]; suites: boolean } {
  const averages = cells.filter((c) =>
    c.scope === "average" && Number.isNaN(c.target_tokens) && Number.isFinite(value(c))
  );
  const suites = new Set(averages.map((c) => c.suite)).size > 1;
  const data = points(averages, cells).map((p) => ({
    ...p,
    panel: [p.group as string, suites ? p.suite as string : ""].filter((x) => x !== "")
      .join(" · "),
  }));
  const panels = panelOrder(data, (p) => p.panel as string, (p) => suiteRank(p.suite as string));
  return { data, panels, suites };
}

/**
 * A per-suite average chart's spec: one wide chart with its legend on the right when it has one
 * panel, else a facet of panels (each with its own x where budget kinds differ).
 */
function suiteAverageSpec(
  cells: readonly CellSummary[],
  data: Record<string, unknown>[],
  panels: string[],
  layer: (color: VegaLiteSpec) => VegaLiteSpec[],
): VegaLiteSpec {
  if (panels.length <= 1) {
    return {
      $schema: SCHEMA,
      config: CONFIG,
      data: { values: data },
      width: 2.2 * WIDTH,
      height: 1.7 * HEIGHT,
      layer: layer(methodColor(cells, 1, "right")),
    };
  }
  return {
    $schema: SCHEMA,
    config: CONFIG,
    data: { values: data },
    facet: { field: "panel", type: "nominal", title: null, sort: panels, header: PANEL_HEADER },
    columns: Math.min(panels.length, 3),
    spec: { width: WIDTH, height: HEIGHT, layer: layer(methodColor(cells, 8)) },
    ...(mixedKinds(cells) ? { resolve: { scale: { x: "independent" } } } : {}),
  };
}

/**
 * Relative performance (score / full) averaged over each suite's tasks, ×100: the headline.
 * One panel per suite (and model and protocol) where the report holds several; a single chart
 * otherwise.
 */
export function relativeVsBudget(cells: readonly CellSummary[]): ChartSpec {
  const { data, panels, suites } = suiteAveragePoints(cells, (c) => c.relative);
  const layer = (color: VegaLiteSpec) => [
    {
      mark: { type: "rule", strokeDash: [5, 4], color: "#888" },
      encoding: { y: { datum: 100, type: "quantitative" } },
    },
    {
      mark: { type: "line", point: true },
      encoding: {
        x: budgetX(cells),
        y: {
          field: "relative",
          type: "quantitative",
          title: "% of the full cache's score",
          scale: { zero: true },
        },
        color,
        tooltip: [{ field: "method" }, { field: "budget" }, {
          field: "relative",
          format: ".1f",
        }],
      },
    },
  ];
  return {
    id: "relative_vs_budget",
    title:
      (suites
        ? "Relative performance averaged over each suite's tasks"
        : "Relative performance averaged over tasks") +
      (groupNoun(cells) === "" ? "" : `, per ${groupNoun(cells)}`),
    caption: "Per task, score / full-cache score on the same model and protocol; averaged " +
      "over the tasks where the full cache scores above 0, ×100" +
      (suites ? ", each suite on its own" : "") +
      ". The dashed line is the full cache (100 %).",
    spec: suiteAverageSpec(cells, data, panels, layer),
  };
}

/**
 * The reference answer's NLL vs kept ratio, averaged over each suite's tasks, one line per
 * series; the full cache's value is a dashed rule. Null when no row has an NLL (the decode
 * protocol leaves it out).
 */
export function answerNllVsBudget(cells: readonly CellSummary[]): ChartSpec | null {
  const { data, panels, suites } = suiteAveragePoints(cells, (c) => c.answer_nll);
  if (data.length === 0) return null;
  const y = {
    field: "answer_nll",
    type: "quantitative",
    title: "reference NLL (nats per token)",
    scale: { zero: false },
  };
  const layer = (color: VegaLiteSpec) => [
    {
      transform: [{ filter: `datum.base === "${FULL}"` }],
      mark: { type: "rule", strokeDash: [5, 4], color: "#888" },
      encoding: { y },
    },
    {
      transform: [{ filter: `datum.base !== "${FULL}"` }],
      mark: { type: "line", point: true },
      encoding: {
        x: budgetX(cells),
        y,
        color,
        tooltip: [{ field: "method" }, { field: "budget" }, {
          field: "answer_nll",
          format: ".3f",
        }],
      },
    },
  ];
  return {
    id: "answer_nll_vs_budget",
    title:
      (suites
        ? "Reference answer NLL averaged over each suite's tasks"
        : "Reference answer NLL averaged over tasks") +
      (groupNoun(cells) === "" ? "" : `, per ${groupNoun(cells)}`),
    caption: "Mean negative log-likelihood per token of each query's first reference answer, " +
      "teacher-forced on the compressed cache (lower is better); it moves with every entry " +
      "evicted, where a 0/1 score moves only when an answer flips. The dashed line is the " +
      "full cache.",
    spec: suiteAverageSpec(cells, data, panels, layer),
  };
}

/**
 * The budget the heatmap shows: the requested one, else kept ratio 0.3, else the middle one of
 * the budgets that bound the cache (below ratio 1; any absolute budget but the full cache's).
 */
export function heatmapBudget(cells: readonly CellSummary[], requested?: number): number | null {
  const taskCells = cells.filter((c) => c.scope === "task");
  const budgets = [...new Set(taskCells.map((c) => c.budget))];
  if (requested !== undefined && budgets.includes(requested)) return requested;
  const below = [...new Set(taskCells.filter(boundsCache).map((c) => c.budget))]
    .sort((a, b) => a - b);
  if (below.length === 0) return budgets.length > 0 ? Math.min(...budgets) : null;
  const ratio = taskCells.find((c) =>
    c.budget_kind === "kept_ratio" && Math.abs(c.budget - 0.3) < 1e-9
  );
  return ratio?.budget ?? below[Math.floor(below.length / 2)];
}

/**
 * A budget in words: "kept ratio 0.3", "512 context tokens per KV head", "128 entries per KV
 * head".
 */
export function budgetPhrase(kind: string, budget: number): string {
  if (kind === "kept_ratio") return `kept ratio ${budget}`;
  if (kind === "context_tokens" || kind === "entries_per_head") {
    return `${budget} ${budgetKindTitle(kind)}`;
  }
  return `budget ${budget}`;
}

/**
 * Task × series heatmap of relative performance at one budget; a block of rows per model and
 * protocol where the report holds several.
 */
export function taskMethodHeatmap(cells: readonly CellSummary[], budget: number): ChartSpec {
  const data = points(cells.filter((c) => c.scope === "task" && c.budget === budget), cells);
  const relative = data.some((d) => d.relative !== null);
  const value = relative ? "relative" : "score";
  const present = new Set(data.map((d) => d.method));
  const methods = methodOrder(cells).filter((m) => present.has(m));
  const tasks = [...new Set(data.map((d) => d.task as string))].sort(byNaturalOrder);
  const groups = panelOrder(data, (p) => p.group as string);
  const at = budgetPhrase(cells.find((c) => c.budget === budget)?.budget_kind ?? "", budget);
  // A series label's parts (method, policy, seed) go on lines of their own.
  const longest = Math.max(...methods.flatMap((m) => m.split(" · ").map((part) => part.length)));
  // Text is dark on the bright end of viridis, white on the dark end.
  const bright = relative ? 55 : 0.55;
  const heatmap = {
    width: { step: Math.max(64, Math.min(132, 7 * longest)) },
    height: { step: 26 },
    encoding: {
      x: {
        field: "method",
        type: "nominal",
        title: null,
        sort: methods,
        axis: {
          orient: "top",
          labelAngle: 0,
          labelLimit: 0,
          labelExpr: "split(datum.label, ' · ')",
          domain: false,
          ticks: false,
        },
      },
      y: {
        field: "task",
        type: "nominal",
        title: null,
        sort: tasks,
        axis: { domain: false, ticks: false, labelLimit: 260 },
      },
    },
    layer: [
      {
        mark: { type: "rect", stroke: "white", strokeWidth: 1 },
        encoding: {
          color: {
            field: value,
            type: "quantitative",
            title: relative ? "% of full" : "score",
            scale: { scheme: "viridis", domain: relative ? [0, 100] : [0, 1], clamp: true },
            legend: { orient: "right", gradientLength: 120 },
          },
        },
      },
      {
        mark: { type: "text", fontSize: 11 },
        encoding: {
          text: { field: value, type: "quantitative", format: relative ? ".0f" : ".2f" },
          color: {
            condition: { test: `datum.${value} >= ${bright}`, value: "#111" },
            value: "white",
          },
        },
      },
    ],
  };
  return {
    id: "task_method_heatmap",
    title: `Task × method at ${at}` +
      (groupNoun(cells) === "" ? "" : `, per ${groupNoun(cells)}`),
    caption: relative
      ? "Relative performance (% of the full cache's score) per task; colours saturate at 100 %."
      : "Mean score per task (no full-cache cells to normalise by).",
    spec: groups.length <= 1
      ? { $schema: SCHEMA, config: CONFIG, data: { values: data }, ...heatmap }
      : {
        $schema: SCHEMA,
        config: CONFIG,
        data: { values: data },
        facet: {
          row: { field: "group", type: "nominal", title: null, sort: groups, header: GROUP_HEADER },
        },
        // The method axis below the last block: on top it would run into the first header.
        spec: {
          ...heatmap,
          encoding: {
            ...heatmap.encoding,
            x: { ...heatmap.encoding.x, axis: { ...heatmap.encoding.x.axis, orient: "bottom" } },
          },
        },
      },
  };
}

/**
 * Efficiency: prefill time, decode time per token and KV bytes held (physical) vs budget, each
 * averaged over a series' tasks at each budget; a row of panels per model and protocol where the
 * report holds several.
 */
export function efficiency(cells: readonly CellSummary[]): ChartSpec {
  const label = seriesLabeler(cells);
  const group = groupLabeler(cells);
  const byPoint = new Map<string, CellSummary[]>();
  for (const c of cells.filter((c) => c.scope === "task")) {
    const key = [group(c), label(c), c.budget_kind, c.budget].join("\u0000");
    byPoint.set(key, [...byPoint.get(key) ?? [], c]);
  }
  const data = [...byPoint.values()].map((cs) => {
    const c = cs[0];
    const avg = (k: keyof CellSummary) => mean(cs.map((x) => x[k] as number));
    const full = avg("kv_bytes_full");
    return {
      method: label(c),
      base: c.method,
      group: group(c),
      // No x for an unbounded budget (full while decoding).
      budget: c.budget === UNBOUNDED_BUDGET ? null : c.budget,
      prefill_ms: avg("prefill_ms"),
      decode_ms_per_token: avg("decode_ms_per_token"),
      kv_fraction: full > 0 ? avg("kv_bytes_held") / full : null,
    };
  });
  const panel = (field: string, axis: string) => ({
    width: WIDTH,
    height: HEIGHT,
    mark: { type: "line", point: true },
    encoding: {
      x: budgetX(cells),
      y: { field, type: "quantitative", title: axis, scale: { zero: true } },
      color: methodColor(cells, 8),
      tooltip: [{ field: "method" }, { field: "budget" }, { field, format: ".3~f" }],
    },
  });
  const panels = (filter: VegaLiteSpec[]) =>
    [
      panel("prefill_ms", "prefill (ms)"),
      panel("decode_ms_per_token", "decode (ms / token)"),
      panel("kv_fraction", "KV bytes held ÷ full cache"),
    ].map((p) => filter.length === 0 ? p : { transform: filter, ...p });
  const groups = panelOrder(data, (p) => p.group as string);
  return {
    id: "efficiency",
    title: `Efficiency vs KV budget${groupNoun(cells) === "" ? "" : `, per ${groupNoun(cells)}`}`,
    caption: "Averaged over the tasks of each method and budget: prefill time, decode time per " +
      "generated token, and the bytes of KV cache actually held over what the full cache holds.",
    spec: groups.length <= 1
      ? {
        $schema: SCHEMA,
        config: CONFIG,
        data: { values: data },
        hconcat: panels([]),
        spacing: 28,
      }
      : {
        $schema: SCHEMA,
        config: CONFIG,
        data: { values: data },
        vconcat: groups.map((g) => ({
          title: { text: g, fontSize: 12 },
          hconcat: panels([{ filter: { field: "group", equal: g } }]),
          spacing: 28,
        })),
        spacing: 18,
      },
  };
}

/**
 * Scoring and selection time per series, stacked on prefill time; a bar per series, and per
 * model and protocol where the report holds several.
 */
export function scoringOverhead(cells: readonly CellSummary[]): ChartSpec {
  const label = seriesLabeler(cells);
  const group = groupLabeler(cells);
  const order = methodOrder(cells);
  const bySeries = new Map<
    string,
    { group: string; label: string; scoring: number[]; selection: number[]; prefill: number[] }
  >();
  for (const c of cells.filter((c) => c.scope === "task")) {
    const key = `${group(c)}\u0000${label(c)}`;
    const m = bySeries.get(key) ??
      { group: group(c), label: label(c), scoring: [], selection: [], prefill: [] };
    m.scoring.push(c.scoring_ms);
    m.selection.push(c.selection_ms);
    m.prefill.push(c.prefill_ms);
    bySeries.set(key, m);
  }
  const parts = ["prefill", "scoring", "selection + compaction"];
  const data = [...bySeries.values()].flatMap((m) => [
    { method: m.label, group: m.group, part: parts[0], order: 0, ms: mean(m.prefill) },
    { method: m.label, group: m.group, part: parts[1], order: 1, ms: mean(m.scoring) },
    { method: m.label, group: m.group, part: parts[2], order: 2, ms: mean(m.selection) },
  ]);
  const groups = panelOrder(data, (p) => p.group as string);
  const bars = {
    width: 2.2 * WIDTH,
    height: { step: 22 },
    mark: { type: "bar", height: { band: 0.7 } },
    encoding: {
      y: {
        field: "method",
        type: "nominal",
        title: null,
        sort: order,
        axis: { ticks: false, labelLimit: 400 },
      },
      x: { field: "ms", type: "quantitative", title: "ms per sample", stack: "zero" },
      color: {
        field: "part",
        type: "nominal",
        title: null,
        scale: { domain: parts, range: ["#c8c8c8", "#3a3a3a", "#8c8c8c"] },
        legend: { orient: "top", direction: "horizontal", symbolType: "square" },
      },
      order: { field: "order", type: "quantitative" },
      tooltip: [{ field: "method" }, { field: "part" }, { field: "ms", format: ".1f" }],
    },
  };
  return {
    id: "scoring_overhead",
    title: `Time per sample, per method${
      groupNoun(cells) === "" ? "" : ` and ${groupNoun(cells)}`
    }`,
    caption: "Mean time per sample, stacked: the prefill forward, the method's extra scoring " +
      "work, and selection with compaction.",
    spec: groups.length <= 1
      ? { $schema: SCHEMA, config: CONFIG, data: { values: data }, ...bars }
      : {
        $schema: SCHEMA,
        config: CONFIG,
        data: { values: data },
        facet: {
          row: { field: "group", type: "nominal", title: null, sort: groups, header: GROUP_HEADER },
        },
        spec: bars,
        resolve: { scale: { y: "independent" } },
      },
  };
}

/** Every chart of a report, in reading order. */
export function reportCharts(
  cells: readonly CellSummary[],
  options: { heatmapBudget?: number } = {},
): ChartSpec[] {
  const charts = [relativeVsBudget(cells), scoreVsBudget(cells)];
  const nll = answerNllVsBudget(cells);
  if (nll !== null) charts.push(nll);
  const budget = heatmapBudget(cells, options.heatmapBudget);
  if (budget !== null) charts.push(taskMethodHeatmap(cells, budget));
  charts.push(efficiency(cells), scoringOverhead(cells));
  return charts;
}

/** Text order with digit runs compared as numbers: "vt (512 tokens)" before "vt (2048 tokens)". */
function byNaturalOrder(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}
