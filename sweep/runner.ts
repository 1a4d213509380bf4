/**
 * The sweep runner: plans work units deterministically (model → task, length, seed → sample →
 * method), skips units whose rows are already committed (resume), runs the protocol for each,
 * appends its rows as one committed batch, and finally aggregates and renders the report.
 * `shard: {index, count}` runs the units whose position in the plan is ≡ index (mod count).
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { fileSha256, shortDigest } from "../digest.ts";
import { Model } from "../engine/model.ts";
import { chooseBackend } from "../engine/model_webgpu.ts";
import type { KvStore } from "../kernels/kv_store.ts";
import { openModelDir } from "../engine/model_dir.ts";
import { loadTokenizer, type TextTokenizer } from "../engine/tokenizer.ts";
import { getMethod, type MethodChoice, parseMethodParams } from "../methods/mod.ts";
import { renderSamplePrompt } from "../tasks/prompt.ts";
import { getTask, parseTaskOptions, taskSamples } from "../tasks/registry.ts";
import type { Sample } from "../tasks/types.ts";
import { writeReport } from "../reports/render.ts";
import {
  budgetKind,
  methodPolicy,
  type MethodSpec,
  methodSpecs,
  resolveTaskNames,
  type SweepConfig,
  taskSpecs,
} from "./config.ts";
import { Progress } from "./progress.ts";
import { runProtocol, type SampleIds } from "./protocols.ts";
import { extendRunJson, startSession } from "./provenance.ts";
import {
  type BudgetKind,
  readRunJson,
  type ResultRow,
  ResultsStore,
  UNBOUNDED_BUDGET,
  writeJsonAtomic,
} from "./store.ts";

/** One slice of a sharded sweep. */
export interface Shard {
  index: number;
  count: number;
}

/** Options of {@linkcode runSweep}. */
export interface RunSweepOptions {
  shard?: Shard;
  /** Write report.html at the end (default true). */
  report?: boolean;
  /** Progress display; default one on stdout. */
  progress?: boolean;
}

/** What a sweep did. */
export interface SweepSummary {
  dir: string;
  rowsWritten: number;
  unitsRun: number;
  unitsSkipped: number;
  /** Wall time of the units' model work (prefill, scoring, generation), summed. */
  computeMs: number;
  wallMs: number;
  report: string | null;
}

interface TaskUnit {
  task: string;
  /** Parsed adapter options (n, targetTokens, seed, …): part of the cell id. */
  options: Record<string, unknown>;
}

/** Canonical JSON: keys sorted at every level, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

function taskUnits(config: SweepConfig): TaskUnit[] {
  const units: TaskUnit[] = [];
  for (const spec of taskSpecs(config)) {
    for (const task of resolveTaskNames(spec)) {
      const adapter = getTask(task);
      for (const seed of spec.seeds ?? [undefined]) {
        // A suite's tasks that are not generated at a target length run once, not per length.
        const lengths = adapter.lengthControlled ? spec.lengths ?? [undefined] : [undefined];
        for (const length of lengths) {
          const raw: Record<string, unknown> = { ...spec.options };
          if (spec.n !== undefined) raw.n = spec.n;
          if (seed !== undefined) raw.seed = seed;
          if (length !== undefined) raw.targetTokens = length;
          units.push({ task, options: parseTaskOptions(adapter, raw) });
        }
      }
    }
  }
  return units;
}

/**
 * A method's budgets: the sweep's, or for `full` the one that never evicts: kept ratio 1, or
 * where budgets are absolute (entries or context tokens per head) no budget at all.
 */
function budgetsFor(config: SweepConfig, method: MethodSpec): number[] {
  const evicts = method.id !== "full";
  if (config.protocol === "decode") {
    return evicts ? config.decodeBudgets : [UNBOUNDED_BUDGET];
  }
  if (config.budgetUnit === "tokens") return evicts ? config.budgets : [UNBOUNDED_BUDGET];
  return evicts ? config.budgets : [1];
}

/**
 * The SHA-256 of every file the sweep's tasks read (the options their adapters list in
 * `fileOptions`: a loader's `path`, an essay haystack), by path: read once per sweep, part of the
 * cell ids of the task's cells and recorded in run.json.
 */
async function datasetDigests(tasks: readonly TaskUnit[]): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const unit of tasks) {
    for (const path of filesOf(unit)) {
      if (path in digests) continue;
      try {
        digests[path] = await fileSha256(path);
      } catch (error) {
        throw new InputError(
          `task ${unit.task}: cannot read its file "${path}" (${(error as Error).message})`,
        );
      }
    }
  }
  return digests;
}

/** The files a task unit's options name. */
function filesOf(unit: TaskUnit): string[] {
  return (getTask(unit.task).fileOptions ?? [])
    .map((name) => unit.options[name])
    .filter((value): value is string => typeof value === "string");
}

/**
 * What identifies each method's own files on each model ({@linkcode MethodDefinition.artifacts}):
 * `artifacts[modelDir][i]` for `methodSpecs(config)[i]`, absent for methods without files.
 */
type Artifacts = Record<string, Record<number, string>>;

/**
 * What a sweep can check before any work, so that a config it cannot run fails before the run
 * directory is touched: every model directory opens (config.json, the checkpoint's headers,
 * tokenizer.json); on each model, every method's own files (gate weights) exist and fit it, and
 * every task unit's samples generate and their longest prompts fit the model's
 * `max_position_embeddings` (only the first sample where a task generates them at a target
 * length). Returns the methods' file identities.
 */
async function preflight(config: SweepConfig, tasks: readonly TaskUnit[]): Promise<Artifacts> {
  const methods = methodSpecs(config).map((spec) => {
    const def = getMethod(spec.id);
    return { id: spec.id, def, params: parseMethodParams(def, spec.params) };
  });
  const artifacts: Artifacts = {};
  for (const modelDir of config.models) {
    const dir = await openModelDir(modelDir);
    try {
      const tokenizer = dir.requireTokenizer();
      const limit = dir.config.maxPositionEmbeddings;
      artifacts[modelDir] = {};
      for (const [i, m] of methods.entries()) {
        if (m.def.artifacts === undefined) continue;
        artifacts[modelDir][i] = await m.def.artifacts(m.params, {
          dir: modelDir,
          config: dir.config,
        });
      }
      for (const unit of tasks) {
        for await (const sample of samplesToCheck(unit, tokenizer)) {
          const prompt = renderSamplePrompt(tokenizer, sample, sample.prompt);
          const shared = prompt.prefix.ids.length + prompt.context.ids.length;
          const longest = Math.max(
            ...prompt.queries.map((q) => shared + q.query.ids.length + q.postfix.ids.length),
          );
          const where = unit.options.targetTokens === undefined
            ? `task ${unit.task} sample ${sample.id}`
            : `task ${unit.task} at ${unit.options.targetTokens} tokens`;
          const beyond = `on ${modelDir}, beyond max_position_embeddings ${limit} in ` +
            `${modelDir}/config.json`;
          if (longest > limit) {
            throw new InputError(`${where}: its prompts reach ${longest} tokens ${beyond}`);
          }
          for (const m of methods) {
            const extra = m.def.extraPositions?.(m.params, {
              contextTokens: prompt.context.ids.length,
              tokenizer,
            }) ?? 0;
            if (longest + extra > limit) {
              throw new InputError(
                `${where}: with method ${m.id}'s own forwards (${extra} positions) its prompts ` +
                  `reach ${longest + extra} tokens ${beyond}`,
              );
            }
          }
        }
      }
    } finally {
      dir.close();
    }
  }
  return artifacts;
}

/**
 * The samples of a task unit whose prompt lengths preflight checks: the first one where the
 * task generates its samples at a target length (the rest are as long), every one otherwise
 * (a benchmark file's rows differ in length, and a sweep should not stop at its 150th).
 */
async function* samplesToCheck(unit: TaskUnit, tokenizer: TextTokenizer): AsyncGenerator<Sample> {
  for await (const sample of taskSamples(unit.task, unit.options, { tokenizer })) {
    yield sample;
    if (unit.options.targetTokens !== undefined) return;
  }
}

/**
 * Run (or resume) a sweep. Rows already committed in `config.out` are skipped, never redone.
 *
 * @example
 * ```ts
 * const summary = await runSweep(validateSweepConfig(json));
 * console.log(summary.report);
 * ```
 */
export async function runSweep(
  config: SweepConfig,
  options: RunSweepOptions = {},
): Promise<SweepSummary> {
  const t0 = performance.now();
  // The backend is settled before any work: webgpu without an adapter fails here.
  const backend = await chooseBackend(config.backend);
  if (backend === null) {
    throw new InputError(
      "backend: webgpu was asked for but no WebGPU adapter is available (for a software one on Linux, install mesa-vulkan-drivers)",
    );
  }
  const tasks = taskUnits(config);
  const artifacts = await preflight(config, tasks);
  const datasets = await datasetDigests(tasks);
  const methods = methodSpecs(config);
  // Fails before any work if unwritable. An older rows.csv is upgraded to today's columns, with
  // the settings and task data of the cells this sweep proves its own.
  const store = await ResultsStore.open(config.out, {
    legacyValues: (rows) => legacyCellValues(rows, { config, tasks, artifacts, datasets }),
  });
  // Each sweep into the directory adds its session to run.json; earlier ones stay as they were.
  const runJson = `${config.out}/run.json`;
  const session = await startSession({
    backend: backend.backend === "cpu"
      ? "cpu (onnxruntime CPU execution provider)"
      : `webgpu on ${backend.adapter!.description}`,
    datasets,
    taskVersions: Object.fromEntries(tasks.map((t) => [t.task, getTask(t.task).version])),
    methodVersions: Object.fromEntries(
      methods.flatMap((m) => {
        const version = getMethod(m.id).version;
        return version === undefined ? [] : [[m.id, version]];
      }),
    ),
  });
  const provenance = extendRunJson(
    await readRunJson(config.out),
    { config, shard: options.shard ?? null, artifacts },
    { session, path: runJson },
  );
  await writeJsonAtomic(runJson, provenance);

  // What each method runs: its default selection with the entry's policy and safeguard.
  const policies = methods.map((m) => methodPolicy(m, config.protocol));
  const settings = Object.fromEntries(
    config.models.map((modelDir) => [
      modelDir,
      methods.map((m, i) => runSettings(config, m, artifacts[modelDir][i])),
    ]),
  );
  const perModel = tasks.reduce((n, t) => n + (t.options.n as number) * methods.length, 0);
  const progress = options.progress === false
    ? null
    : new Progress(perModel * config.models.length);
  let unit = -1;
  let rowsWritten = 0;
  let unitsRun = 0;
  let unitsSkipped = 0;
  let computeMs = 0;
  let peakRss = Deno.memoryUsage().rss;

  for (const modelDir of config.models) {
    // The tokenizer is enough to plan and to find finished units; the model loads on demand.
    const tokenizer = await loadTokenizer(modelDir);
    let model: Model<KvStore> | null = null;
    for (const taskUnit of tasks) {
      const adapter = getTask(taskUnit.task);
      const n = taskUnit.options.n as number;
      let samples: Sample[] | null = null;
      let task: TaskIdentity | null = null;
      for (let s = 0; s < n; s++) {
        for (const method of methods) {
          unit++;
          const label = `${modelDir} · ${taskUnit.task} · sample ${s + 1}/${n} · ${method.id}`;
          if (options.shard && unit % options.shard.count !== options.shard.index) continue;
          samples ??= await collect(taskSamples(taskUnit.task, taskUnit.options, { tokenizer }));
          task ??= taskIdentity(taskUnit, metricsOf(samples), datasets);
          const taskData = task.data ?? "";
          const cellIds = new Map<number, string>();
          for (const budget of budgetsFor(config, method)) {
            const files = artifacts[modelDir][methods.indexOf(method)];
            cellIds.set(
              budget,
              await cellId(modelDir, method, { budget, kind: budgetKind(config) }, {
                task,
                config,
                files,
              }),
            );
          }
          const sample = samples[s];
          const done = sample.queries.every((_, q) =>
            [...cellIds.values()].every((id) =>
              store.has({ cell_id: id, sample_id: sample.id, query_index: q })
            )
          );
          if (done) {
            unitsSkipped++;
            progress?.tick(`${label} (done)`);
            continue;
          }
          model ??= await Model.load(modelDir, {
            backend: backend.backend,
            gpu: backend.adapter === null ? undefined : { adapter: backend.adapter },
          });
          const m: Model<KvStore> = model;
          const prompt = renderSamplePrompt(tokenizer, sample, sample.prompt);
          const ids: SampleIds = {
            prefix: Int32Array.from(prompt.prefix.ids),
            context: Int32Array.from(prompt.context.ids),
            queries: prompt.queries.map((q) => ({
              query: Int32Array.from(q.query.ids),
              postfix: Int32Array.from(q.postfix.ids),
            })),
          };
          const policy = policies[methods.indexOf(method)];
          const choice: MethodChoice = {
            method: method.id,
            params: method.params,
            policy: policy ?? undefined,
            seed: config.seed,
            tokenizer,
          };
          const t1 = performance.now();
          const outcomes = await runProtocol(config.protocol, {
            model: m,
            tokenizer,
            sample,
            ids,
            method: choice,
            budgets: [...cellIds.keys()],
            budgetUnit: config.budgetUnit,
            window: config.window,
            chunkSize: config.chunkSize,
            sampling: config.sampling === undefined
              ? undefined
              : { ...config.sampling, seed: config.seed },
          });
          computeMs += performance.now() - t1;
          const rows: ResultRow[] = outcomes.map((o) => {
            const query = sample.queries[o.queryIndex];
            return {
              cell_id: cellIds.get(o.budget)!,
              model: modelDir,
              method: method.id,
              params: canonicalJson(method.params),
              policy: policy?.policy ?? "none",
              safeguard: policy?.safeguard ?? NaN,
              protocol: config.protocol,
              suite: adapter.suite,
              task: taskUnit.task,
              task_options: canonicalJson(sampleOptions(taskUnit)),
              task_version: adapter.version,
              task_data: taskData,
              budget_kind: o.budgetKind,
              budget: o.budget,
              seed: config.seed,
              settings: settings[modelDir][methods.indexOf(method)],
              sample_id: sample.id,
              sample_meta: canonicalJson(sample.meta),
              query_index: o.queryIndex,
              metric: query.metric,
              score: o.score,
              kept_ratio_asked: o.keptRatioAsked,
              kept_ratio_achieved: o.keptRatioAchieved,
              entries_kept: o.entriesKept,
              kv_bytes_held: o.bytesHeld,
              kv_bytes_full: o.bytesFull,
              context_tokens: ids.context.length,
              prompt_tokens: o.promptTokens,
              generated_tokens: o.generatedTokens,
              stop_reason: o.stopReason,
              prediction: o.prediction,
              reference: JSON.stringify(query.answers),
              answer_nll: o.answerNll,
              prefill_ms: round(o.prefillMs),
              decode_ms_per_token: round(o.decodeMsPerToken),
              scoring_ms: round(o.scoringMs),
              selection_ms: round(o.selectionMs),
            };
          });
          rowsWritten += await store.append(rows);
          unitsRun++;
          peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
          progress?.tick(label);
        }
      }
    }
    model?.dispose(); // a WebGPU model's device memory goes back before the next model loads
  }
  // The session is the last of provenance.sessions: completing it leaves the others untouched.
  Object.assign(session, {
    ended: new Date().toISOString(),
    unitsRun,
    unitsSkipped,
    rowsWritten,
    peakRssBytes: peakRss,
  });
  await writeJsonAtomic(runJson, provenance);
  const report = options.report === false ? null : (await writeReport(config.out)).html;
  return {
    dir: config.out,
    rowsWritten,
    unitsRun,
    unitsSkipped,
    computeMs,
    wallMs: performance.now() - t0,
    report,
  };
}

function round(ms: number): number {
  return Number.isFinite(ms) ? Math.round(ms * 1000) / 1000 : 0;
}

/**
 * A task unit's options without `n`: what each sample is (length, task seed, adapter options),
 * not how many there are. Raising `n` adds samples to the same cells; the first samples are the
 * same either way.
 */
function sampleOptions(task: TaskUnit): Record<string, unknown> {
  const { n: _n, ...rest } = task.options;
  return rest;
}

/** What identifies a task unit's samples and their grading in its cells' ids. */
interface TaskIdentity {
  task: string;
  /** The adapter's version: bumped when its samples or grading change. */
  version: number;
  /** The metric names its queries use, sorted. */
  metrics: string[];
  options: Record<string, unknown>;
  /** The SHA-256 of the file the task reads (comma-joined when several). */
  data?: string;
}

/** The metric names a task unit's samples use, sorted. */
function metricsOf(samples: readonly Sample[]): string[] {
  return [...new Set(samples.flatMap((s) => s.queries.map((q) => q.metric)))].sort();
}

function taskIdentity(
  unit: TaskUnit,
  metrics: string[],
  datasets: Record<string, string>,
): TaskIdentity {
  const files = filesOf(unit);
  // One file is its digest (as cell ids have been for loader files); several, their list.
  const data = files.length === 0
    ? undefined
    : files.length === 1
    ? datasets[files[0]]
    : files.map((f) => datasets[f]).join(",");
  return {
    task: unit.task,
    version: getTask(unit.task).version,
    metrics,
    options: sampleOptions(unit),
    ...(data === undefined ? {} : { data }),
  };
}

/**
 * A cell's id: a digest of everything that makes its rows what they are, so a resume never
 * reuses rows made otherwise: the model, the method (id, version when it declares one, params,
 * policy, safeguard, its own files), the budget (with its kind where it counts context tokens:
 * ratio 1 and 1 token per head are other cells), the task (name, version, metrics, options, a
 * loader file's SHA-256), the protocol, window and seed, and the sampling settings when answers
 * are sampled.
 */
async function cellId(
  model: string,
  method: MethodSpec,
  { budget, kind }: { budget: number; kind: BudgetKind },
  parts: { task: TaskIdentity; config: SweepConfig; files: string | undefined },
): Promise<string> {
  const { task, config, files } = parts;
  const version = getMethod(method.id).version;
  return await shortDigest(canonicalJson({
    // Only for methods with files of their own.
    ...(files === undefined ? {} : { artifacts: files }),
    model,
    method: method.id,
    ...(version === undefined ? {} : { methodVersion: version }),
    params: method.params,
    policy: method.policy ?? null,
    safeguard: method.safeguard ?? null,
    budget,
    // Kept ratios and decode's entries per head (the only kind under its protocol) keep the ids
    // they had before budgets in context tokens existed.
    ...(kind === "context_tokens" ? { budgetKind: kind } : {}),
    task,
    protocol: config.protocol,
    window: config.window,
    seed: config.seed,
    // Greedy runs keep the ids they had before sampling existed.
    ...(config.sampling === undefined ? {} : { sampling: config.sampling }),
  }));
}

/**
 * The rows' `settings`: what a cell's id holds of the sweep and the method beyond the rows' other
 * columns, as canonical JSON of the keys that differ from a plain run (the cell id's names:
 * `artifacts`, `methodVersion`, `sampling`, `window`), or "" when none does. Reports keep rows
 * whose settings differ in series of their own.
 */
function runSettings(config: SweepConfig, method: MethodSpec, files: string | undefined): string {
  const version = getMethod(method.id).version;
  const settings = {
    ...(files === undefined ? {} : { artifacts: files }),
    ...(version === undefined ? {} : { methodVersion: version }),
    ...(config.sampling === undefined ? {} : { sampling: config.sampling }),
    ...(config.window === "spec" ? {} : { window: config.window }),
  };
  return Object.keys(settings).length === 0 ? "" : canonicalJson(settings);
}

/** What {@linkcode legacyCellValues} knows of the sweep. */
interface SweepPlan {
  config: SweepConfig;
  tasks: readonly TaskUnit[];
  artifacts: Artifacts;
  datasets: Record<string, string>;
}

/**
 * The `settings` and `task_data` of the cells of an older rows.csv that this sweep can prove its
 * own, by cell id: a cell whose id this config gives again, for the model, method, budget, task
 * and options its rows record (with the metrics they use), was made with this config's settings
 * and data. Other cells (another sweep's, or one whose rows so far miss a metric of its task)
 * are left out and keep the legacy values.
 */
async function legacyCellValues(
  rows: readonly ResultRow[],
  plan: SweepPlan,
): Promise<Map<string, Partial<ResultRow>>> {
  const { config, tasks, artifacts, datasets } = plan;
  const methods = methodSpecs(config);
  const cells = new Map<string, { row: ResultRow; metrics: Set<string> }>();
  for (const row of rows) {
    const cell = cells.get(row.cell_id) ?? { row, metrics: new Set<string>() };
    cell.metrics.add(row.metric);
    cells.set(row.cell_id, cell);
  }
  const known = new Map<string, Partial<ResultRow>>();
  for (const [id, { row, metrics }] of cells) {
    if (!config.models.includes(row.model)) continue;
    const units = tasks.filter((u) =>
      u.task === row.task && canonicalJson(sampleOptions(u)) === row.task_options
    );
    search: for (const unit of units) {
      const task = taskIdentity(unit, [...metrics].sort(), datasets);
      for (const [i, method] of methods.entries()) {
        if (method.id !== row.method || canonicalJson(method.params) !== row.params) continue;
        const files = artifacts[row.model][i];
        const again = await cellId(row.model, method, {
          budget: row.budget,
          kind: budgetKind(config),
        }, { task, config, files });
        if (again !== id) continue;
        known.set(id, {
          settings: runSettings(config, method, files),
          task_data: task.data ?? "",
        });
        break search;
      }
    }
  }
  return known;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
