import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { InputError } from "../errors.ts";
import { aggregate } from "../sweep/aggregate.ts";
import { ResultsStore, rowsToCsv, UNBOUNDED_BUDGET, writeJsonAtomic } from "../sweep/store.ts";
import { writeReport } from "./render.ts";
import { reportCharts } from "./specs.ts";

Deno.test("the report renders every chart as inline SVG with marks and needs no network", async () => {
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(syntheticRows());
  await writeJsonAtomic(`${dir}/run.json`, { config: { title: "</script><b>x" }, backend: "cpu" });
  const files = await writeReport(dir);
  const html = await Deno.readTextFile(files.html);
  assertEquals(files.svgs.length, 5);
  for (const svg of files.svgs) {
    const text = await Deno.readTextFile(svg);
    assert(/class="mark-(line|rect|symbol|area)/.test(text), `${svg} has no marks`);
  }
  assertEquals((html.match(/<svg/g) ?? []).length, 5);
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
