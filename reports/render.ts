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
import { readRunRows, writeTextAtomic } from "../sweep/store.ts";
import { type ChartSpec, reportCharts } from "./specs.ts";

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

/** The headline table: relative performance (% of full) per method and budget, averaged over tasks. */
function summaryTable(cells: readonly CellSummary[]): string {
  const averages = cells.filter((c) => c.scope === "average");
  const budgets = [...new Set(averages.map((c) => c.budget))].sort((a, b) => b - a);
  const methods = [
    ...new Set(
      averages.map((c) => `${c.method}\u0000${c.params}\u0000${c.protocol}\u0000${c.model}`),
    ),
  ];
  const head = `<tr><th>model</th><th>method</th><th>params</th><th>protocol</th>${
    budgets.map((b) => `<th>${b}</th>`).join("")
  }</tr>`;
  const body = methods.map((key) => {
    const [method, params, protocol, model] = key.split("\u0000");
    const cellsOf = averages.filter((c) =>
      c.method === method && c.params === params && c.protocol === protocol && c.model === model
    );
    const tds = budgets.map((b) => {
      const c = cellsOf.find((x) => x.budget === b);
      return `<td>${c === undefined ? "" : formatNumber(c.score)}</td>`;
    }).join("");
    return `<tr><td>${escapeHtml(model)}</td><td>${escapeHtml(method)}</td><td><code>${
      escapeHtml(params)
    }</code></td><td>${escapeHtml(protocol)}</td>${tds}</tr>`;
  }).join("\n");
  return `<table class="summary">\n${head}\n${body}\n</table>`;
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
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
figure { margin: 1rem 0 2rem; } figcaption { color: #555; font-size: 0.9rem; }
table.summary { border-collapse: collapse; font-size: 0.9rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
table.summary td:nth-child(-n+4), table.summary th:nth-child(-n+4) { text-align: left; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; font-size: 0.85rem; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
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
  const cells = aggregate(rows);
  const cellsPath = `${dir}/cells.csv`;
  await writeTextAtomic(cellsPath, cellsToCsv(cells));
  let run: Record<string, unknown> | null = null;
  try {
    run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new InputError(`${dir}/run.json: not valid JSON (${(error as Error).message})`);
    }
  }
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
<p>${rows.length} result rows, ${
    cells.filter((c) => c.scope === "task").length
  } cells. Data: <code>rows.csv</code>, <code>cells.csv</code>; charts also in <code>charts/</code>.</p>
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
