/**
 * The report as a reader sees it: headless Chromium (Debian's `chromium`) opens report.html
 * from file:// and every chart must be drawn, with no console or page error and no request.
 * Without Chromium the test says so in one line and is skipped — except under CI=true, where a
 * missing browser fails it.
 *
 * The docs' picture is not made here but from a real run:
 * `deno task report runs/default --screenshot docs/report.png`.
 *
 * @module
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { readRunRows, ResultsStore, writeJsonAtomic } from "../sweep/store.ts";
import { aggregate } from "../sweep/aggregate.ts";
import { chromiumPath, hasChromium, visitReport } from "./browser.ts";
import { DEMO_KEPT_RATIOS, DEMO_METHODS, DEMO_TASKS, sweepLikeRows } from "./demo_rows.ts";
import { writeReport } from "./render.ts";
import { reportCharts } from "./specs.ts";
import { runReportCommand } from "../cli/report.ts";

const CHROMIUM = chromiumPath();
const PRESENT = hasChromium(CHROMIUM);
const CI = Deno.env.get("CI") === "true";
if (!PRESENT && !CI) {
  console.log(`browser test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
}

/** The data marks each chart must draw (Vega mark types). */
const EXPECTED_MARKS: Record<string, string[]> = {
  relative_vs_budget: ["line", "symbol"],
  score_vs_budget: ["area", "line", "symbol"],
  task_method_heatmap: ["rect"],
  efficiency: ["line", "symbol"],
  scoring_overhead: ["rect"],
};

/** Width and height of a PNG, from its IHDR chunk. */
function pngSize(bytes: Uint8Array): [number, number] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assertEquals([...bytes.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(""), "PNG");
  return [view.getUint32(16), view.getUint32(20)];
}

Deno.test({
  name: "the report opens in headless Chromium: every chart drawn, no error, no request",
  ignore: !PRESENT && !CI,
  // Playwright's pipe to the browser outlives the test's bookkeeping by a tick.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assert(PRESENT, `CI=true and no Chromium at ${CHROMIUM}: install Debian's chromium package`);
    const dir = await Deno.makeTempDir({ prefix: "evictbench-report-" });
    try {
      const run = `${dir}/synthetic-sweep`;
      await Deno.mkdir(run);
      await (await ResultsStore.open(run)).append(sweepLikeRows());
      await writeJsonAtomic(`${run}/run.json`, {
        note: "synthetic data shaped like the default sweep (reports/demo_rows.ts)",
        methods: DEMO_METHODS,
        budgets: DEMO_KEPT_RATIOS,
        tasks: DEMO_TASKS,
        protocol: "query-agnostic",
        backend: "cpu",
      });
      const files = await writeReport(run);
      const specs = reportCharts(aggregate(await readRunRows(run)));
      const screenshot = `${dir}/report.png`;
      const visit = await visitReport(files.html, { screenshot, width: 1100, scale: 1 });

      assertEquals(visit.consoleErrors, [], "console errors");
      assertEquals(visit.pageErrors, [], "page errors");
      assertEquals(visit.requests, [], "network requests besides the file:// page itself");
      assertEquals(visit.charts.map((c) => c.id), specs.map((s) => s.id), "one figure per spec");
      for (const chart of visit.charts) {
        assertEquals(chart.svgs, 1, `${chart.id}: one inline SVG`);
        assert(
          chart.width > 100 && chart.height > 100,
          `${chart.id}: drawn ${chart.width}×${chart.height}`,
        );
        assertEquals(chart.width, chart.intrinsicWidth, `${chart.id}: scaled down to fit the page`);
        for (const type of EXPECTED_MARKS[chart.id] ?? ["line"]) {
          assert(
            (chart.marks[type] ?? 0) > 0,
            `${chart.id}: no ${type} marks (${JSON.stringify(chart.marks)})`,
          );
        }
      }
      const [width, height] = pngSize(await Deno.readFile(screenshot));
      assertEquals(width, 1100);
      assertEquals(height, visit.pageHeight);

      // The same through `deno task report --screenshot`.
      const viaCommand = `${dir}/via-command.png`;
      await runReportCommand(run, { screenshot: viaCommand });
      assertEquals(pngSize(await Deno.readFile(viaCommand)), [width, height]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
