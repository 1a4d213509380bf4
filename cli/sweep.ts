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
import { resolveTasks } from "../tasks/mod.ts";

/** Options of the sweep command, as commander parses them. */
export interface SweepCommandOptions {
  out?: string;
  backend?: string;
  protocol?: string;
  seed?: number;
  models?: string[];
  methods?: string[];
  budgets?: number[];
  budgetUnit?: string;
  tasks?: string[];
  n?: number;
  lengths?: number[];
  decodeBudgets?: number[];
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

/**
 * The config's task entries with `--n` and `--lengths` applied to each: `n` to every entry,
 * `lengths` to the entries whose tasks are generated at a target length (a math task in the
 * list keeps its own samples). Anything but a list is returned as it is, for validation to name.
 */
export function withTaskFlags(
  tasks: unknown,
  flags: Pick<SweepCommandOptions, "n" | "lengths">,
): unknown {
  if (!Array.isArray(tasks) || (flags.n === undefined && flags.lengths === undefined)) return tasks;
  return tasks.map((entry) => {
    const spec = typeof entry === "string" ? { task: entry } : entry;
    if (spec === null || typeof spec !== "object" || typeof spec.task !== "string") return entry;
    const out: Record<string, unknown> = { ...spec };
    if (flags.n !== undefined) out.n = flags.n;
    if (flags.lengths !== undefined && takesLengths(spec.task)) out.lengths = flags.lengths;
    return out;
  });
}

/** Whether a task or suite name holds a task generated at a target length (unknown: false). */
function takesLengths(name: string): boolean {
  try {
    return resolveTasks([name]).some((t) => t.lengthControlled);
  } catch {
    return false;
  }
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
    budgetUnit: options.budgetUnit,
    decodeBudgets: options.decodeBudgets,
    tasks: options.tasks,
  };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) raw[key] = value;
  raw.tasks = withTaskFlags(raw.tasks, options);
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
