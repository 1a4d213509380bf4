import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { InputError } from "../errors.ts";
import { aggregate, type CellSummary } from "../sweep/aggregate.ts";
import {
  type ResultRow,
  ResultsStore,
  rowsToCsv,
  UNBOUNDED_BUDGET,
  writeJsonAtomic,
} from "../sweep/store.ts";
import { writeReport } from "./render.ts";
import { reportCharts, type VegaLiteSpec } from "./specs.ts";

Deno.test("the report renders every chart as inline SVG with marks and needs no network", async () => {
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(syntheticRows());
  await writeJsonAtomic(`${dir}/run.json`, { config: { title: "</script><b>x" }, backend: "cpu" });
  const files = await writeReport(dir);
  const html = await Deno.readTextFile(files.html);
  assertEquals(files.svgs.map((f) => f.split("/").at(-1)), [
    "relative_vs_budget.svg",
    "score_vs_budget.svg",
    "answer_nll_vs_budget.svg",
    "task_method_heatmap.svg",
    "efficiency.svg",
    "scoring_overhead.svg",
  ]);
  for (const svg of files.svgs) {
    const text = await Deno.readTextFile(svg);
    assert(/class="mark-(line|rect|symbol|area)/.test(text), `${svg} has no marks`);
  }
  assertEquals((html.match(/<svg/g) ?? []).length, 6);
  assert(
    !/<script|<link|src=|url\(/i.test(html.replace(/<svg[\s\S]*?<\/svg>/g, "")),
    "report must not reference external resources",
  );
  assert(!html.includes("</script><b>"), "run metadata must be escaped");
  assert(html.includes("&lt;/script&gt;&lt;b&gt;x"));
  const cells = await Deno.readTextFile(files.cells);
  assert(cells.startsWith("scope,model,method"));
});

Deno.test("a heatmap budget the run lacks and a duplicated row are one-line errors", async () => {
  const dir = await Deno.makeTempDir();
  const rows = syntheticRows();
  await (await ResultsStore.open(dir)).append(rows);
  await assertRejects(
    () => writeReport(dir, { heatmapBudget: 0.7 }),
    InputError,
    "heatmap budget 0.7: " + dir + " has no cells at that budget (its budgets: 1, 0.5, 0.3)",
  );
  await writeReport(dir, { heatmapBudget: 0.5 });
  // A row appended twice by hand, committed.
  const line = rowsToCsv([rows[3]]);
  await Deno.writeTextFile(`${dir}/rows.csv`, line, { append: true });
  const size = (await Deno.stat(`${dir}/rows.csv`)).size;
  await Deno.writeTextFile(`${dir}/rows.commit`, `${size}\n`);
  await assertRejects(
    () => writeReport(dir),
    InputError,
    "duplicate row (cell full|1|niah_single, sample niah_single-1, query 1)",
  );
});

Deno.test("the full cache under the decode protocol has no x: only its dashed rule", () => {
  const rows = syntheticRows({ methods: ["full", "snapkv"], budgets: [64, 128] }).map((r) => ({
    ...r,
    protocol: "decode",
    budget_kind: "entries_per_head",
    budget: r.method === "full" ? UNBOUNDED_BUDGET : r.budget,
  }));
  const chart = reportCharts(aggregate(rows)).find((c) => c.id === "score_vs_budget")!;
  const spec = chart.spec as {
    data: { values: { base: string; budget: number | null }[] };
    spec: { layer: { encoding: { x?: { axis: { values: number[] } } } }[] };
  };
  assert(spec.data.values.filter((p) => p.base === "full").every((p) => p.budget === null));
  assertEquals(spec.spec.layer[0].encoding.x!.axis.values, [64, 128]);
});

/**
 * Rows of a sweep under budgetUnit "tokens": `budgets` in context tokens per KV head, the full
 * cache at the unbounded budget.
 */
function tokenRows(budgets: number[], methods = ["full", "snapkv"]): ResultRow[] {
  return syntheticRows({ methods, budgets }).map((r) => ({
    ...r,
    cell_id: `${r.cell_id}|tokens`,
    budget_kind: "context_tokens",
    budget: r.method === "full" ? UNBOUNDED_BUDGET : r.budget,
    kept_ratio_asked: r.method === "full" ? 1 : Math.min(1, r.budget / r.context_tokens),
  }));
}

/** Write `rows` as a run and its report, failing on any warning Vega-Lite prints. */
async function reportOf(rows: readonly ResultRow[]): Promise<{ html: string; svgs: string[] }> {
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(rows);
  const warnings: unknown[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args);
  let files;
  try {
    files = await writeReport(dir);
  } finally {
    console.warn = warn;
  }
  assertEquals(warnings, []);
  for (const svg of files.svgs) {
    const text = await Deno.readTextFile(svg);
    assert(/class="mark-(line|rect|symbol|area)/.test(text), `${svg} has no marks`);
  }
  return { html: await Deno.readTextFile(files.html), svgs: files.svgs };
}

Deno.test("budgets in context tokens: an x axis titled for them, log past 8×, the full cache a dashed rule, the table's columns in tokens", async () => {
  const cells = aggregate(tokenRows([128, 512, 2048]));
  const snap = cells.filter((c) => c.method === "snapkv" && c.scope === "task");
  assert(snap.every((c) => Number.isFinite(c.relative)), "relative vs the unbounded full cache");
  const charts = reportCharts(cells);
  const score = charts.find((c) => c.id === "score_vs_budget")!.spec;
  const x = score.spec.layer[0].encoding.x;
  assertEquals(x.title, "context tokens per KV head");
  assertEquals(x.scale, { type: "log", nice: false });
  assertEquals(x.axis.values, [128, 512, 2048]);
  const points = score.data.values as { base: string; budget: number | null }[];
  assert(points.filter((p) => p.base === "full").every((p) => p.budget === null));
  const relative = charts.find((c) => c.id === "relative_vs_budget")!.spec;
  assertEquals(relative.layer[1].encoding.x.title, "context tokens per KV head");
  const heatmap = charts.find((c) => c.id === "task_method_heatmap")!;
  assertEquals(heatmap.title, "Task × method at 512 context tokens per KV head");
  // Budgets within 8× of each other stay on a linear scale.
  const near = reportCharts(aggregate(tokenRows([256, 1024])))[1].spec.spec.layer[0].encoding.x;
  assertEquals(near.scale, { zero: false });
  const { html } = await reportOf(tokenRows([128, 512, 2048]));
  assert(
    html.includes(
      '<th colspan="4">context tokens per KV head</th><th rowspan="2">mean over budgets</th>',
    ),
    "the table's budget columns are labelled as tokens",
  );
  assert(
    html.includes("<th>∞</th><th>2048</th><th>512</th><th>128</th>"),
    "the full cache's ∞ first",
  );
  assert(html.includes("2 methods × 3 budgets × 2 tasks"), "the unbounded budget is none asked");
});

Deno.test("kept ratios, context tokens and decode entries in one run: panels of their own, each with its x", async () => {
  const ratios = syntheticRows({ methods: ["full", "snapkv"] });
  const tokens = tokenRows([128, 2048]).map((r) => ({ ...r, protocol: "query-aware" }));
  const decode = syntheticRows({ methods: ["full", "snapkv"], budgets: [64, 128] }).map((r) => ({
    ...r,
    cell_id: `${r.cell_id}|decode`,
    protocol: "decode",
    budget_kind: "entries_per_head",
    budget: r.method === "full" ? UNBOUNDED_BUDGET : r.budget,
    kept_ratio_asked: NaN,
  }));
  const cells = aggregate([...ratios, ...tokens, ...decode]);
  const score = reportCharts(cells).find((c) => c.id === "score_vs_budget")!.spec;
  assertEquals(score.resolve.scale.x, "independent");
  assertEquals(score.spec.layer[0].encoding.x.title, "KV budget (as each panel names it)");
  assertEquals(score.spec.layer[0].encoding.x.scale, { zero: false, nice: false });
  assertEquals(chartOf(cells, "relative_vs_budget").panels, [
    "decode · entries per KV head",
    "query-agnostic · kept ratio r",
    "query-aware · context tokens per KV head",
  ]);
  const { html } = await reportOf([...ratios, ...tokens, ...decode]);
  assert(
    html.includes(
      '<th colspan="3">kept ratio r</th><th colspan="3">context tokens per KV head</th>',
    ),
  );
  assert(html.includes('<th colspan="3">entries per KV head</th>'));
  // Each series' mean runs over its own kind's budgets: a decode series has no kept ratios.
  const decodeRow = html.split("\n").find((l) =>
    l.startsWith("<tr><td>decode</td>") && l.includes("snapkv")
  )!;
  assert(/<td[^>]*>[\d.]+<span class="abs">[\d.]+<\/span><\/td><\/tr>$/.test(decodeRow), decodeRow);
  // One protocol under two units (two sweeps into one directory): the unit splits the panels.
  const twice = aggregate([...ratios, ...tokenRows([128, 2048])]);
  assertEquals(chartOf(twice, "relative_vs_budget").panels, [
    "context tokens per KV head",
    "kept ratio r",
  ]);
  assert(reportCharts(twice).every((c) => c.title.endsWith("budget kind")), "titles say so");
  await reportOf([...ratios, ...tokenRows([128, 2048])]);
});

/** `rows` as another series would write them: `changes` applied, cell ids made their own. */
function variant(
  rows: readonly ResultRow[],
  tag: string,
  changes: Partial<ResultRow>,
): ResultRow[] {
  return rows.map((r) => ({ ...r, ...changes, cell_id: `${r.cell_id}|${tag}` }));
}

/** The legend's series (the colour domain) and the panels of a chart, by chart id. */
function chartOf(cells: CellSummary[], id: string): { series: string[]; panels: string[] } {
  const spec = reportCharts(cells).find((c) => c.id === id)!.spec;
  const inner = spec.spec ?? spec;
  const layers = inner.layer ?? inner.hconcat ?? [inner];
  const color = layers.map((l: VegaLiteSpec) => l.encoding?.color).find((c: VegaLiteSpec) =>
    c?.field === "method"
  );
  return { series: color?.scale.domain ?? [], panels: spec.facet?.sort ?? [] };
}

/** The method column of the report's summary table, row by row (swatches left out). */
function tableRows(html: string): string[] {
  return [...html.matchAll(/<td class="method"><span[^>]*><\/span>([^<]*)<\/td>/g)].map((m) =>
    m[1]
  );
}

/**
 * Assert that `rows` make exactly the `expected` series in every budget chart's legend and one
 * report table row each; returns the report's HTML.
 */
async function assertSeriesApart(rows: readonly ResultRow[], expected: string[]): Promise<string> {
  const cells = aggregate(rows);
  for (const id of ["relative_vs_budget", "score_vs_budget", "efficiency"]) {
    assertEquals(new Set(chartOf(cells, id).series), new Set(expected), id);
  }
  const { html } = await reportOf(rows);
  assertEquals(new Set(tableRows(html)), new Set(expected));
  assertEquals(tableRows(html).length, expected.length, "one row per series");
  return html;
}

Deno.test("policy, safeguard and seed variants are series of their own in legends and the table", async () => {
  const base = syntheticRows({ methods: ["full", "snapkv"] });
  const snap = base.filter((r) => r.method === "snapkv");
  const rows = [
    ...base,
    ...variant(snap, "global", { policy: "global" }),
    ...variant(snap, "guarded", { policy: "global", safeguard: 0.2 }),
  ];
  await assertSeriesApart(rows, [
    "full",
    "snapkv · per-head",
    "snapkv · global",
    "snapkv · global + safeguard 0.2",
  ]);
  // Two seeds of one method: a series each, named by the seed.
  const seeds = aggregate([...base, ...variant(base, "s1", { seed: 1 })]);
  assertEquals(
    new Set(chartOf(seeds, "relative_vs_budget").series),
    new Set(["full · seed 0", "full · seed 1", "snapkv · seed 0", "snapkv · seed 1"]),
  );
});

Deno.test("two protocols or two models in one run: panels named by them, rows of their own, every chart drawn", async () => {
  const base = syntheticRows({ methods: ["full", "snapkv"] });
  const rows = [
    ...base,
    ...variant(base, "aware", { protocol: "query-aware" }),
    ...variant(base, "other", { model: "models/other" }),
  ];
  const cells = aggregate(rows);
  const relative = chartOf(cells, "relative_vs_budget");
  assertEquals(relative.series, ["full", "snapkv"], "model and protocol are panels, not series");
  assertEquals(relative.panels, [
    "other · query-agnostic",
    "tiny · query-agnostic",
    "tiny · query-aware",
  ]);
  assert(chartOf(cells, "score_vs_budget").panels.includes("tiny · query-aware · vt"));
  const titles = reportCharts(cells).map((c) => c.title);
  assert(titles.every((t) => t.includes("model and protocol")), titles.join("; "));
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(rows);
  // Vega-Lite warns (on the console) about specs it has to guess at; none should.
  const warnings: unknown[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args);
  let files;
  try {
    files = await writeReport(dir);
  } finally {
    console.warn = warn;
  }
  assertEquals(warnings, []);
  for (const svg of files.svgs) {
    const text = await Deno.readTextFile(svg);
    assert(/class="mark-(line|rect|symbol|area)/.test(text), `${svg} has no marks`);
  }
  const html = await Deno.readTextFile(files.html);
  assertEquals(tableRows(html).length, 6, "full and snapkv for each model and protocol");
  assert(html.includes("<td>models/other</td><td>query-agnostic</td>"));
  assert(html.includes("<td>models/tiny</td><td>query-aware</td>"));
});

Deno.test("one model, one protocol and one suite: the headline chart is one panel, as before", () => {
  const spec = reportCharts(aggregate(syntheticRows()))[0].spec;
  assertEquals(spec.facet, undefined);
  assertEquals(spec.layer.length, 2);
  assertEquals(spec.layer[1].encoding.color.legend.orient, "right");
});

Deno.test("the summary table lists each suite's average, then its lengths; MRCR is named and left out", async () => {
  const base = syntheticRows({ methods: ["full", "snapkv"] });
  const rows = [
    ...base,
    ...variant(base, "long", { task_options: '{"seed":0,"targetTokens":4096}' }),
    ...variant(base.filter((r) => r.task === "vt"), "math", { suite: "math", task: "gsm" }),
    ...variant(base.filter((r) => r.task === "vt"), "mrcr", {
      task: "mrcr_file",
      task_options: '{"path":"mrcr.parquet"}',
    }),
  ];
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(rows);
  const html = await Deno.readTextFile((await writeReport(dir)).html);
  const blocks = [...html.matchAll(/<tr class="block"><th[^>]*>([^<]*)<\/th>/g)].map((m) => m[1]);
  assertEquals(blocks, [
    "long-context · all lengths",
    "long-context · 1024 tokens",
    "long-context · 4096 tokens",
    "math · 1024 tokens",
  ]);
  assert(html.includes("mrcr_file is reported on its own and left out of averages."));
  const cells = (await Deno.readTextFile(`${dir}/cells.csv`)).split("\n");
  assert(cells[0].includes(",safeguard,protocol,seed,") && cells[0].includes(",absolute,"));
  assert(cells.some((l) => l.startsWith("task,") && l.includes(",mrcr_file,")));
});

Deno.test("a rows.csv from before the task_options column and those after it still reports", async () => {
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(syntheticRows());
  const [header, ...body] = parse(await Deno.readTextFile(`${dir}/rows.csv`)) as string[][];
  const keep = header.map((_, i) => i).filter((i) =>
    ![
      "task_options",
      "task_version",
      "safeguard",
      "sample_meta",
      "stop_reason",
      "answer_nll",
      "task_data",
      "settings",
    ].includes(header[i])
  );
  const legacy = stringify([header, ...body].map((r) => keep.map((i) => r[i])));
  await Deno.writeTextFile(`${dir}/rows.csv`, legacy);
  await Deno.writeTextFile(`${dir}/rows.commit`, `${new TextEncoder().encode(legacy).length}\n`);
  const files = await writeReport(dir);
  assertEquals(files.svgs.length, 5);
  const html = await Deno.readTextFile(files.html);
  assertEquals(new Set(tableRows(html)), new Set(["full", "snapkv", "streamingllm"]));
});

Deno.test("series whose run settings differ are drawn, listed and named apart; a run of one setting keeps plain names", async () => {
  const base = syntheticRows({ methods: ["full", "snapkv"] });
  const snap = base.filter((r) => r.method === "snapkv");
  const sampled = '{"sampling":{"temperature":0.7,"topK":0,"topP":0.95}}';
  const rows = [
    ...base,
    ...variant(snap, "w", { settings: '{"window":4096}' }),
    ...variant(base, "t", { settings: sampled }),
    ...variant(snap, "v", { settings: '{"methodVersion":2,"window":4096}' }),
  ];
  const html = await assertSeriesApart(rows, [
    "full",
    "full · temperature 0.7, top-p 0.95",
    "snapkv",
    "snapkv · window 4096",
    "snapkv · temperature 0.7, top-p 0.95",
    "snapkv · version 2 · window 4096",
  ]);
  assert(html.includes("6 methods × 3 budgets × 2 tasks"));
  // One setting per method, however unplain (gated's gate file, a window): names as before.
  const gates = variant(snap, "g", { settings: '{"artifacts":"gates sha256:0123456789abcdef"}' });
  const one = aggregate([...base.filter((r) => r.method === "full"), ...gates].map((r) => ({
    ...r,
    settings: r.method === "full" ? '{"window":4096}' : r.settings,
  })));
  assertEquals(chartOf(one, "relative_vs_budget").series, ["full", "snapkv"]);
});

Deno.test("a task read from two data files is two labelled tasks in the charts, the table's counts and cells.csv", async () => {
  const base = syntheticRows({ methods: ["full", "snapkv"], tasks: ["hotpotqa"] });
  const rows = [
    ...variant(base, "d1", { task_data: "9f86d081".repeat(8) }),
    ...variant(base, "d2", { task_data: "1a2b3c4d".repeat(8), settings: '{"window":64}' }),
  ];
  const panels = chartOf(aggregate(rows), "score_vs_budget").panels;
  assertEquals(panels, ["hotpotqa (data 1a2b3c4d)", "hotpotqa (data 9f86d081)"]);
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(rows);
  const files = await writeReport(dir);
  const html = await Deno.readTextFile(files.html);
  assert(html.includes("× 2 tasks:"), "each data file's cells are a task of their own");
  const [header, ...lines] = parse(await Deno.readTextFile(files.cells)) as string[][];
  assert(
    header.join(",").includes(",seed,settings,suite,task,task_options,task_version,task_data,"),
  );
  const column = (name: string) => header.indexOf(name);
  const windowed = lines.filter((l) => l[column("settings")] === '{"window":64}');
  assert(windowed.length > 0 && windowed.every((l) => l[column("task")] !== "hotpotqa"));
  assert(
    lines.some((l) =>
      l[column("scope")] === "task" && l[column("task_data")] === "1a2b3c4d".repeat(8)
    ),
  );
});
