/**
 * Rendering a run's report: Vega-Lite → Vega → static SVG (headless, no canvas), assembled
 * into one self-contained HTML page that works offline — no script, no stylesheet link, no
 * request of any kind. Each chart is also written as its own SVG file.
 *
 * @module
 */

import * as vega from "vega";
import * as vl from "vega-lite";
import { InputError } from "../errors.ts";
import {
  aggregate,
  cellsToCsv,
  type CellSummary,
  seriesKey,
  suiteRank,
} from "../sweep/aggregate.ts";
import {
  BUDGET_KINDS,
  checkUniqueRows,
  readRunJson,
  readRunRows,
  UNBOUNDED_BUDGET,
  writeTextAtomic,
} from "../sweep/store.ts";
import { taskAveraged } from "../tasks/registry.ts";
import {
  boundsCache,
  budgetKindTitle,
  type ChartSpec,
  methodColors,
  methodOrder,
  reportCharts,
  seriesLabeler,
} from "./specs.ts";

/** Render one Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: ChartSpec["spec"]): Promise<string> {
  const compiled = vl.compile(spec as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

function formatNumber(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

/** A pale background for a relative performance: red at 0 %, amber at 50 %, green at 100 %. */
function shade(percent: number): string {
  if (!Number.isFinite(percent)) return "";
  const hue = Math.round(1.2 * Math.min(100, Math.max(0, percent)));
  return ` style="background:hsl(${hue} 60% 88%)"`;
}

/** The text of a score ×100 in the table: one decimal, or "" when there is none. */
function percent(x: number): string {
  return Number.isFinite(x) ? formatNumber(x) : "";
}

/** One block of the summary table: a suite's overall averages, or those at one length. */
interface Block {
  suite: string;
  /** NaN: the suite's overall averages. */
  length: number;
  title: string;
}

/**
 * The summary table's blocks, in reading order: per suite (in {@linkcode suiteRank} order), its
 * overall averages, then one block per context length where the suite's tasks run at several
 * (a suite all at one length has one block, titled with it).
 */
function tableBlocks(averages: readonly CellSummary[]): Block[] {
  const suites = [...new Set(averages.map((c) => c.suite))].sort((a, b) =>
    suiteRank(a) - suiteRank(b) || (a < b ? -1 : a > b ? 1 : 0)
  );
  return suites.flatMap((suite) => {
    const own = averages.filter((c) => c.suite === suite);
    const lengths = [...new Set(own.map((c) => c.target_tokens))]
      .filter((l) => Number.isFinite(l))
      .sort((a, b) => a - b);
    // One length covers the suite when each of its averages runs over as many queries as the
    // suite's overall one does.
    const overall = new Map(
      own.filter((c) => Number.isNaN(c.target_tokens)).map((c) => [averageKey(c), c]),
    );
    const covers = lengths.length === 1 &&
      own.every((c) =>
        Number.isNaN(c.target_tokens) || overall.get(averageKey(c))?.n_queries === c.n_queries
      );
    if (covers) return [{ suite, length: NaN, title: `${suite} · ${lengths[0]} tokens` }];
    return [
      { suite, length: NaN, title: lengths.length > 1 ? `${suite} · all lengths` : suite },
      ...lengths.map((length) => ({ suite, length, title: `${suite} · ${length} tokens` })),
    ];
  });
}

/** An average's series, budget and suite: what its overall and per-length rows share. */
function averageKey(c: CellSummary): string {
  return [seriesKey(c), c.budget_kind, c.budget, c.suite].join("\u0000");
}

/** A column of the summary table: one budget of one kind. */
interface BudgetColumn {
  kind: string;
  budget: number;
}

/**
 * The summary table's budget columns: per budget kind (kept ratios, context tokens, entries per
 * head, in that order), the largest budget first; the full cache's unbounded one leads its kind.
 */
function budgetColumns(averages: readonly CellSummary[]): BudgetColumn[] {
  const rank = (k: string) => {
    const i = (BUDGET_KINDS as readonly string[]).indexOf(k);
    return i < 0 ? BUDGET_KINDS.length : i;
  };
  const seen = new Map<string, BudgetColumn>();
  for (const c of averages) {
    seen.set(`${c.budget_kind}\u0000${c.budget}`, { kind: c.budget_kind, budget: c.budget });
  }
  return [...seen.values()].sort((a, b) =>
    rank(a.kind) - rank(b.kind) || (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0) ||
    b.budget - a.budget
  );
}

/** The header of a budget column: the budget, or ∞ for the full cache's unbounded one. */
function budgetHeader(column: BudgetColumn): string {
  return column.budget === UNBOUNDED_BUDGET ? "∞" : String(column.budget);
}

/**
 * The headline table: per suite (and per context length where a suite runs at several), each
 * series' relative performance (% of full) averaged over tasks at every budget, with its mean
 * score ×100 beside it in grey. Budget columns are grouped by kind under a header that names
 * it (kept ratio r, context tokens per KV head, entries per KV head); the last column is the
 * mean over the budgets that bound the cache.
 */
function summaryTable(cells: readonly CellSummary[]): string {
  const averages = cells.filter((c) => c.scope === "average");
  const columns = budgetColumns(averages);
  const kinds = [...new Set(columns.map((c) => c.kind))];
  const distinct = (f: (c: CellSummary) => string) => [...new Set(averages.map(f))];
  const models = distinct((c) => c.model);
  const protocols = distinct((c) => c.protocol);
  const label = seriesLabeler(cells);
  const colors = methodColors(cells);
  const order = methodOrder(cells);
  const lead = [
    ...(models.length > 1 ? ["model"] : []),
    ...(protocols.length > 1 ? ["protocol"] : []),
    "method",
  ];
  const meanHeader = kinds.length === 1 && kinds[0] === "kept_ratio"
    ? "mean, r &lt; 1"
    : "mean over budgets";
  const kindHeaders = kinds.map((kind) =>
    `<th colspan="${columns.filter((c) => c.kind === kind).length}">${
      escapeHtml(budgetKindTitle(kind))
    }</th>`
  ).join("");
  const head = `<thead><tr>${
    lead.map((h) => `<th rowspan="2">${h}</th>`).join("")
  }${kindHeaders}<th rowspan="2">${meanHeader}</th></tr>
<tr>${columns.map((c) => `<th>${budgetHeader(c)}</th>`).join("")}</tr></thead>`;
  const cell = (relative: number, absolute: number, bold: boolean) => {
    const text = percent(relative);
    const abs = Number.isFinite(absolute)
      ? `<span class="abs">${formatNumber(100 * absolute)}</span>`
      : "";
    return `<td${shade(relative)}>${bold ? `<b>${text}</b>` : text}${abs}</td>`;
  };
  const body = tableBlocks(averages).map((block) => {
    const inBlock = averages.filter((c) =>
      c.suite === block.suite && Object.is(c.target_tokens, block.length)
    );
    // The best evicting method per column, model and protocol is set in bold.
    const best = new Map<string, number>();
    for (const c of inBlock) {
      if (c.method === "full" || !Number.isFinite(c.score)) continue;
      const k = `${c.model}\u0000${c.protocol}\u0000${c.budget_kind}\u0000${c.budget}`;
      best.set(k, Math.max(best.get(k) ?? -Infinity, c.score));
    }
    const rows = new Map<string, CellSummary[]>();
    for (const c of inBlock) {
      const key = `${c.model}\u0000${c.protocol}\u0000${label(c)}`;
      rows.set(key, [...rows.get(key) ?? [], c]);
    }
    const sorted = [...rows.values()].sort((a, b) =>
      (a[0].model < b[0].model ? -1 : a[0].model > b[0].model ? 1 : 0) ||
      (a[0].protocol < b[0].protocol ? -1 : a[0].protocol > b[0].protocol ? 1 : 0) ||
      order.indexOf(label(a[0])) - order.indexOf(label(b[0]))
    );
    const lines = sorted.map((series) => {
      const { model, protocol, method } = series[0];
      const at = columns.map((col) =>
        series.find((c) => c.budget_kind === col.kind && c.budget === col.budget)
      );
      const tds = at.map((c, i) => {
        const { kind, budget } = columns[i];
        const top = best.get(`${model}\u0000${protocol}\u0000${kind}\u0000${budget}`);
        const v = c?.score ?? NaN;
        return cell(v, c?.absolute ?? NaN, method !== "full" && Number.isFinite(v) && v === top);
      }).join("");
      // Over the budgets of the series' own kind (a decode series has no kept ratios).
      const kinds = new Set(series.map((c) => c.budget_kind));
      const below = at.filter((_, i) =>
        kinds.has(columns[i].kind) &&
        boundsCache({ budget_kind: columns[i].kind, budget: columns[i].budget })
      );
      const meanOf = (xs: (number | undefined)[]) =>
        xs.length > 0 && xs.every((x) => Number.isFinite(x))
          ? (xs as number[]).reduce((a, b) => a + b, 0) / xs.length
          : NaN;
      const swatch = `<span class="swatch" style="background:${
        colors.get(label(series[0])) ?? "#999"
      }"></span>`;
      return `<tr>${models.length > 1 ? `<td>${escapeHtml(model)}</td>` : ""}${
        protocols.length > 1 ? `<td>${escapeHtml(protocol)}</td>` : ""
      }<td class="method">${swatch}${escapeHtml(label(series[0]))}</td>${tds}${
        cell(meanOf(below.map((c) => c?.score)), meanOf(below.map((c) => c?.absolute)), false)
      }</tr>`;
    });
    const title = `<tr class="block"><th colspan="${lead.length + columns.length + 1}">${
      escapeHtml(block.title)
    }</th></tr>`;
    return [title, ...lines].join("\n");
  }).join("\n");
  const context = [
    ...(models.length === 1 ? [`model <code>${escapeHtml(models[0])}</code>`] : []),
    ...(protocols.length === 1 ? [`protocol <code>${escapeHtml(protocols[0])}</code>`] : []),
  ].join(", ");
  return `<p>${context === "" ? "" : `${context}. `}Per suite, the relative performance ` +
    "averaged over its tasks; in grey, the mean score ×100 over the same tasks. Best evicting " +
    "method per column in bold.</p>\n" +
    `<table class="summary">\n${head}\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** One sentence on what the run holds. */
function describe(rowCount: number, cells: readonly CellSummary[]): string {
  const taskCells = cells.filter((c) => c.scope === "task");
  const label = seriesLabeler(cells);
  const count = (f: (c: CellSummary) => string | number) => new Set(taskCells.map(f)).size;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  // Budgets the run asked for: the full cache's unbounded one is none.
  const budgets = new Set(
    taskCells.filter((c) => c.budget !== UNBOUNDED_BUDGET).map((c) =>
      `${c.budget_kind}\u0000${c.budget}`
    ),
  ).size;
  return `${plural(count(label), "method")} × ${plural(budgets, "budget")} × ${
    plural(count((c) => c.task), "task")
  }: ${plural(taskCells.length, "cell")} from ${plural(rowCount, "result row")}.${
    unsolvedNote(taskCells)
  }${unaveragedNote(taskCells)}`;
}

/** Names the tasks that averages leave out because the full cache scored 0 on them. */
function unsolvedNote(taskCells: readonly CellSummary[]): string {
  const unsolved = [
    ...new Set(taskCells.filter((c) => c.method === "full" && c.score === 0).map((c) => c.task)),
  ].sort();
  if (unsolved.length === 0) return "";
  return ` The full cache scores 0 on ${unsolved.join(", ")}, so ${
    unsolved.length === 1 ? "it has" : "they have"
  } no relative figure and averages leave ${unsolved.length === 1 ? "it" : "them"} out.`;
}

/** Names the tasks reported only on their own (MRCR): averages leave them out. */
function unaveragedNote(taskCells: readonly CellSummary[]): string {
  // A task's label starts with its registered name, which has no space.
  const alone = [
    ...new Set(taskCells.map((c) => c.task.split(" ")[0]).filter((t) => !taskAveraged(t))),
  ].sort();
  if (alone.length === 0) return "";
  return ` ${alone.join(", ")} ${alone.length === 1 ? "is" : "are"} reported on ${
    alone.length === 1 ? "its" : "their"
  } own and left out of averages.`;
}

function metadataList(run: Record<string, unknown> | null): string {
  if (run === null) return "<p>No run.json in this directory.</p>";
  const items = Object.entries(run).map(([k, v]) =>
    `<dt>${escapeHtml(k)}</dt><dd><code>${
      escapeHtml(typeof v === "string" ? v : JSON.stringify(v))
    }</code></dd>`
  );
  return `<dl class="meta">${items.join("")}</dl>`;
}

const STYLE = `
body { font-family: "DejaVu Sans", Verdana, system-ui, sans-serif; margin: 1.5rem auto; max-width: 1060px;
  padding: 0 1.5rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: 0.3rem; } h2 { font-size: 1.15rem; margin: 2rem 0 0.4rem; }
p { margin: 0.4rem 0; } code { font-size: 0.9em; }
figure { margin: 0.5rem 0 1rem; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.85rem; margin-top: 0.3rem; }
table.summary { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; margin-top: 0.5rem; }
table.summary th, table.summary td { border: 1px solid #d4d4d4; padding: 0.2rem 0.55rem; text-align: right; }
table.summary th { background: #f4f4f4; font-weight: 600; text-align: center; }
table.summary td.method, table.summary td:first-child { text-align: left; white-space: nowrap; }
table.summary tr.block th { text-align: left; background: #fafafa; font-weight: 600; }
table.summary span.abs { color: #777; font-size: 0.8em; margin-left: 0.4em; }
span.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.45em; border-radius: 2px; vertical-align: -0.05em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; font-size: 0.85rem; }
dl.meta dt { color: #555; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
`;

/** What {@linkcode writeReport} produced. */
export interface ReportFiles {
  html: string;
  svgs: string[];
  cells: string;
}

/**
 * Build the report of run directory `dir` from its results store alone: cells.csv, one SVG per
 * chart under `charts/`, and report.html with everything inlined.
 */
export async function writeReport(
  dir: string,
  options: { heatmapBudget?: number } = {},
): Promise<ReportFiles> {
  const rows = await readRunRows(dir);
  if (rows.length === 0) throw new InputError(`${dir}/rows.csv: no result rows to report`);
  checkUniqueRows(rows, `${dir}/rows.csv`);
  const cells = aggregate(rows);
  const wanted = options.heatmapBudget;
  if (wanted !== undefined && !cells.some((c) => c.scope === "task" && c.budget === wanted)) {
    const budgets = [...new Set(cells.map((c) => c.budget))]
      .filter((b) => b !== UNBOUNDED_BUDGET)
      .sort((a, b) => b - a);
    throw new InputError(
      `heatmap budget ${wanted}: ${dir} has no cells at that budget (its budgets: ${
        budgets.join(", ")
      })`,
    );
  }
  const cellsPath = `${dir}/cells.csv`;
  await writeTextAtomic(cellsPath, cellsToCsv(cells));
  const run = await readRunJson(dir);
  await Deno.mkdir(`${dir}/charts`, { recursive: true });
  const figures: string[] = [];
  const svgs: string[] = [];
  for (const chart of reportCharts(cells, options)) {
    const svg = await renderSvg(chart.spec);
    const svgPath = `${dir}/charts/${chart.id}.svg`;
    await writeTextAtomic(svgPath, svg);
    svgs.push(svgPath);
    figures.push(
      `<h2>${escapeHtml(chart.title)}</h2>\n<figure id="${chart.id}">${svg}<figcaption>${
        escapeHtml(chart.caption)
      }</figcaption></figure>`,
    );
  }
  const title = `evictbench report — ${dir.split("/").filter(Boolean).pop() ?? dir}`;
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>${
    describe(rows.length, cells)
  } Data: <code>rows.csv</code>, <code>cells.csv</code>; charts also in
<code>charts/</code>.</p>
<h2>Summary: relative performance (% of the full cache), averaged over each suite's tasks</h2>
${summaryTable(cells)}
${figures.join("\n")}
<h2>Run</h2>
${metadataList(run)}
</body>
</html>
`;
  const htmlPath = `${dir}/report.html`;
  await writeTextAtomic(htmlPath, html);
  return { html: htmlPath, svgs, cells: cellsPath };
}
