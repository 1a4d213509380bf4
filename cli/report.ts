/**
 * `evictbench report <run dir>`: cells.csv, one SVG per chart and a self-contained
 * report.html, built from the run's results store alone.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { writeReport } from "../reports/render.ts";

/** Options of the report command, as commander parses them. */
export interface ReportCommandOptions {
  budget?: number;
}

/** Run the report command; prints the report's path as its last line. */
export async function runReportCommand(
  run: string | undefined,
  options: ReportCommandOptions,
): Promise<void> {
  if (run === undefined) {
    throw new InputError("report: give the run directory, e.g. deno task report runs/default");
  }
  const t0 = performance.now();
  const files = await writeReport(run, { heatmapBudget: options.budget });
  console.log(`cells: ${files.cells}`);
  console.log(
    `charts: ${files.svgs.length} SVG files in ${run}/charts/ (${
      (performance.now() - t0).toFixed(0)
    } ms)`,
  );
  console.log(files.html);
}
