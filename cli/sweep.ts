/**
 * `evictbench sweep [config]`: run (or resume) a sweep and render its report; the report's
 * path is the last line of output. Without a config it runs the default sweep on the default
 * model. CLI flags override the config file, which overrides the defaults.
 *
 * `evictbench merge <out> <runs...>`: join the run directories of a sharded sweep.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { defaultSweep } from "../sweep/default.ts";
import { mergeRuns } from "../sweep/merge.ts";
import { readSweepConfig, sweepJsonSchema, validateSweepConfig } from "../sweep/config.ts";
import { runSweep, type Shard } from "../sweep/runner.ts";

/** Options of the sweep command, as commander parses them. */
export interface SweepCommandOptions {
  out?: string;
  backend?: string;
  protocol?: string;
  seed?: number;
  models?: string[];
  methods?: string[];
  budgets?: number[];
  tasks?: string[];
  shard?: string;
  schema?: boolean;
  report?: boolean;
}

/** Parse "i/n" into a shard, naming the flag on failure. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new InputError(`--shard: expected i/n with 0 ≤ i < n (e.g. 0/4), got "${text}"`);
  }
  return { index, count };
}

/** Run the sweep command. */
export async function runSweepCommand(
  configPath: string | undefined,
  options: SweepCommandOptions,
): Promise<void> {
  if (options.schema) {
    console.log(JSON.stringify(sweepJsonSchema(), null, 2));
    return;
  }
  const shard = options.shard === undefined ? undefined : parseShard(options.shard);
  const raw: Record<string, unknown> = configPath === undefined
    ? await defaultSweep()
    : await readSweepConfig(configPath);
  const overrides: Record<string, unknown> = {
    out: options.out,
    backend: options.backend,
    protocol: options.protocol,
    seed: options.seed,
    models: options.models,
    methods: options.methods,
    budgets: options.budgets,
    tasks: options.tasks,
  };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) raw[key] = value;
  const config = validateSweepConfig(raw, configPath ?? "default sweep");
  const summary = await runSweep(config, { shard, report: options.report !== false });
  const overhead = summary.computeMs > 0 ? summary.wallMs / summary.computeMs : NaN;
  console.log(
    `${summary.unitsRun} units run, ${summary.unitsSkipped} already done; ${summary.rowsWritten} rows written to ${summary.dir}/rows.csv`,
  );
  console.log(
    `wall ${(summary.wallMs / 1000).toFixed(1)} s, model compute ${
      (summary.computeMs / 1000).toFixed(1)
    } s (${Number.isFinite(overhead) ? `${overhead.toFixed(2)}×` : "n/a"})`,
  );
  console.log(summary.report ?? `${summary.dir}/rows.csv`);
}

/** Run the merge command. */
export async function runMergeCommand(out: string, runs: string[]): Promise<void> {
  const merged = await mergeRuns(out, runs);
  console.log(`${merged.rows} rows from ${runs.length} runs`);
  console.log(merged.report);
}
