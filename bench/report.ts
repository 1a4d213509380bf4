/**
 * Report generation benchmark: `deno task report` on a results store of about 10 000 rows
 * shaped like the default sweep (reports/demo_rows.ts), timed end to end: reading rows.csv,
 * aggregation with bootstrap CIs, every chart's SVG and report.html.
 *
 * @module
 */

import { latencyMs } from "./runtime.ts";
import { sweepLikeRows } from "../reports/demo_rows.ts";
import { writeReport } from "../reports/render.ts";
import { ResultsStore } from "../sweep/store.ts";

/** What {@linkcode benchReport} measured. */
export interface ReportBenchResult {
  rows: number;
  /** Median wall time of one report, in ms. */
  medianMs: number;
  samples: number;
}

/** Time writeReport on a fresh store of at least `rows` rows (median of `iterations`). */
export async function benchReport(
  options: { rows?: number; iterations?: number } = {},
): Promise<ReportBenchResult> {
  const wanted = options.rows ?? 10_000;
  const perSample = sweepLikeRows({ samples: 1 }).length;
  const rows = sweepLikeRows({ samples: Math.ceil(wanted / perSample) });
  const dir = await Deno.makeTempDir({ prefix: "evictbench-report-bench-" });
  try {
    await (await ResultsStore.open(dir)).append(rows);
    const timing = await latencyMs(() => writeReport(dir), {
      iterations: options.iterations ?? 3,
      warmup: 1,
    });
    return { rows: rows.length, medianMs: timing.medianMs, samples: timing.samples };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
