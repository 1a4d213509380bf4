/**
 * `evictbench report <run dir>`: cells.csv, one SVG per chart and a self-contained
 * report.html, built from the run's results store alone.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { writeReport } from "../reports/render.ts";
import { chromiumPath, hasChromium, visitReport } from "../reports/browser.ts";

/** Options of the report command, as commander parses them. */
export interface ReportCommandOptions {
  budget?: number;
  /** Also open the report in headless Chromium and save a full-page PNG here. */
  screenshot?: string;
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
  if (options.screenshot !== undefined) {
    if (!hasChromium()) {
      throw new InputError(
        `--screenshot: no Chromium at ${chromiumPath()} (install Debian's chromium, or set EVICTBENCH_CHROMIUM)`,
      );
    }
    const visit = await visitReport(files.html, { screenshot: options.screenshot });
    const problems = [...visit.consoleErrors, ...visit.pageErrors, ...visit.requests];
    for (const problem of problems) console.error(`report page: ${problem}`);
    console.log(`screenshot: ${options.screenshot} (${visit.charts.length} charts)`);
  }
  console.log(files.html);
}
