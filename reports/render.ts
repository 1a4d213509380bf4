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
import { aggregate, cellsToCsv, type CellSummary } from "../sweep/aggregate.ts";
import {
  checkUniqueRows,
  readRunJson,
  readRunRows,
  UNBOUNDED_BUDGET,
  writeTextAtomic,
} from "../sweep/store.ts";
import { type ChartSpec, methodColors, methodLabel, methodOrder, reportCharts } from "./specs.ts";

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

/** The headline table: relative performance (% of full) per method and budget, averaged over tasks. */
function summaryTable(cells: readonly CellSummary[]): string {
  const averages = cells.filter((c) => c.scope === "average");
  const budgets = [...new Set(averages.map((c) => c.budget))].sort((a, b) => b - a);
  const distinct = (f: (c: CellSummary) => string) => [...new Set(averages.map(f))];
  const models = distinct((c) => c.model);
  const protocols = distinct((c) => c.protocol);
  const colors = methodColors(cells);
  const order = methodOrder(cells);
  const rows = distinct((c) => `${c.model}\u0000${c.protocol}\u0000${methodLabel(c)}`)
    .map((key) => key.split("\u0000"))
    .sort((a, b) =>
      (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) ||
      order.indexOf(a[2]) - order.indexOf(b[2])
    );
  const lead = [
    ...(models.length > 1 ? ["model"] : []),
    ...(protocols.length > 1 ? ["protocol"] : []),
    "method",
  ];
  const cellOf = (row: string[], b: number) =>
    averages.find((c) =>
      c.model === row[0] && c.protocol === row[1] && methodLabel(c) === row[2] && c.budget === b
    );
  // The best evicting method per column (and model and protocol) is set in bold.
  const best = new Map<string, number>();
  for (const c of averages) {
    if (c.method === "full" || !Number.isFinite(c.score)) continue;
    const k = `${c.model}\u0000${c.protocol}\u0000${c.budget}`;
    best.set(k, Math.max(best.get(k) ?? -Infinity, c.score));
  }
  const head = `<thead><tr>${
    lead.map((h) => `<th rowspan="2">${h}</th>`).join("")
  }<th colspan="${budgets.length}">kept ratio r</th><th rowspan="2">mean, r &lt; 1</th></tr>
<tr>${budgets.map((b) => `<th>${b}</th>`).join("")}</tr></thead>`;
  const body = rows.map((row) => {
    const [model, protocol, method] = row;
    const values = budgets.map((b) => cellOf(row, b)?.score ?? NaN);
    const tds = values.map((v, i) => {
      const top = best.get(`${model}\u0000${protocol}\u0000${budgets[i]}`);
      const text = formatNumber(v);
      const bold = method !== "full" && Number.isFinite(v) && v === top;
      return `<td${shade(v)}>${bold ? `<b>${text}</b>` : Number.isFinite(v) ? text : ""}</td>`;
    }).join("");
    const below = values.filter((v, i) => budgets[i] < 1 && Number.isFinite(v));
    const avg = below.length === 0 ? NaN : below.reduce((a, b) => a + b, 0) / below.length;
    const swatch = `<span class="swatch" style="background:${
      colors.get(method) ?? "#999"
    }"></span>`;
    return `<tr>${models.length > 1 ? `<td>${escapeHtml(model)}</td>` : ""}${
      protocols.length > 1 ? `<td>${escapeHtml(protocol)}</td>` : ""
    }<td class="method">${swatch}${escapeHtml(method)}</td>${tds}<td${shade(avg)}>${
      Number.isFinite(avg) ? formatNumber(avg) : ""
    }</td></tr>`;
  }).join("\n");
  const context = [
    ...(models.length === 1 ? [`model <code>${escapeHtml(models[0])}</code>`] : []),
    ...(protocols.length === 1 ? [`protocol <code>${escapeHtml(protocols[0])}</code>`] : []),
  ].join(", ");
  return `${
    context === "" ? "" : `<p>${context}. Best evicting method per column in bold.</p>\n`
  }` +
    `<table class="summary">\n${head}\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** One sentence on what the run holds. */
function describe(rowCount: number, cells: readonly CellSummary[]): string {
  const taskCells = cells.filter((c) => c.scope === "task");
  const count = (f: (c: CellSummary) => string | number) => new Set(taskCells.map(f)).size;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${plural(count(methodLabel), "method")} × ${plural(count((c) => c.budget), "budget")} × ${
    plural(count((c) => c.task), "task")
  }: ${plural(taskCells.length, "cell")} from ${plural(rowCount, "result row")}.${
    unsolvedNote(taskCells)
  }`;
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
<h2>Summary: relative performance (% of the full cache), averaged over tasks</h2>
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
