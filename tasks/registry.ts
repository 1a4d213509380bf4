/**
 * The task registry: tasks registered by name, grouped by suite, with their options checked by
 * each task's zod schema. Unknown names and bad options are {@linkcode InputError}s that name
 * the input and suggest near matches.
 *
 * @example
 * ```ts
 * const task = getTask("niah_single_2");
 * const options = parseTaskOptions(task, { n: 10, targetTokens: 8192 });
 * for await (const sample of task.samples(options, { tokenizer })) { ... }
 * ```
 *
 * @module
 */

import { z } from "zod";
import { InputError, nearMatches } from "../errors.ts";
import { GENERATORS } from "./generators/mod.ts";
import { LOADER_TASKS } from "./loaders/adapters.ts";
import { checkSeeds } from "./generators/seeds.ts";
import {
  type AdapterEnv,
  type AnyTaskAdapter,
  type Sample,
  type SuiteName,
  SUITES,
} from "./types.ts";

const TASK_NAME = /^[a-z][a-z0-9_]*$/;
const registry = new Map<string, AnyTaskAdapter>();

/**
 * Register a task. Its name must be new and in lower snake case, its suite must exist and its
 * version must be a whole number ≥ 1.
 */
export function registerTask(adapter: AnyTaskAdapter): void {
  if (!TASK_NAME.test(adapter.name)) {
    throw new InputError(`task name "${adapter.name}" must be lower snake case (a-z, 0-9, _)`);
  }
  if (!SUITES.includes(adapter.suite)) {
    throw new InputError(
      `task ${adapter.name}: unknown suite "${adapter.suite}" (expected one of ${
        SUITES.join(", ")
      })`,
    );
  }
  if (!Number.isInteger(adapter.version) || adapter.version < 1) {
    throw new InputError(
      `task ${adapter.name}: version must be a whole number ≥ 1, got ${
        JSON.stringify(adapter.version)
      }`,
    );
  }
  if (registry.has(adapter.name)) {
    throw new InputError(`task ${adapter.name} is registered twice`);
  }
  registry.set(adapter.name, adapter);
}

export { nearMatches };

function suggestion(name: string, candidates: Iterable<string>): string {
  const near = nearMatches(name, candidates);
  return near.length > 0 ? `; did you mean ${near.join(", ")}?` : "";
}

/** The task called `name`. */
export function getTask(name: string): AnyTaskAdapter {
  const task = registry.get(name);
  if (task === undefined) {
    throw new InputError(
      `unknown task "${name}"${
        suggestion(name, [...registry.keys(), ...SUITES])
      } (\`evictbench corpus --list\` lists them)`,
    );
  }
  return task;
}

/**
 * Whether a suite's averages include task `name`: false only for a registered task that opts out
 * (its adapter's `averaged` is false); a task this registry does not know (a plugin not loaded,
 * a renamed task in old rows) is averaged.
 */
export function taskAveraged(name: string): boolean {
  return registry.get(name)?.averaged !== false;
}

/** Registered tasks, by suite (in {@linkcode SUITES} order) then name; optionally one suite's. */
export function listTasks(options: { suite?: SuiteName } = {}): AnyTaskAdapter[] {
  if (options.suite !== undefined) getSuite(options.suite);
  return [...registry.values()]
    .filter((t) => options.suite === undefined || t.suite === options.suite)
    .sort((a, b) =>
      SUITES.indexOf(a.suite) - SUITES.indexOf(b.suite) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    );
}

/** The suite called `name` (an InputError with near matches when there is none). */
export function getSuite(name: string): SuiteName {
  if (!(SUITES as readonly string[]).includes(name)) {
    throw new InputError(
      `unknown suite "${name}"${suggestion(name, SUITES)} (suites: ${SUITES.join(", ")})`,
    );
  }
  return name as SuiteName;
}

/**
 * Task and suite names → tasks, in order, without repeats: a suite name stands for all of its
 * tasks. An empty list is an InputError.
 */
export function resolveTasks(names: readonly string[]): AnyTaskAdapter[] {
  if (names.length === 0) throw new InputError("no task or suite named (expected at least one)");
  const out = new Map<string, AnyTaskAdapter>();
  for (const name of names) {
    if ((SUITES as readonly string[]).includes(name) && !registry.has(name)) {
      // A suite means its generators; file loaders need a path, so they are named one by one.
      for (const t of listTasks({ suite: name as SuiteName })) {
        if (t.source === "generator") out.set(t.name, t);
      }
    } else {
      const t = getTask(name);
      out.set(t.name, t);
    }
  }
  return [...out.values()];
}

/**
 * Check `raw` against the task's options schema (defaults filled, unknown keys rejected) and
 * the seed against its split; every failure is an InputError naming the task and the field.
 */
export function parseTaskOptions(
  task: AnyTaskAdapter,
  raw: Record<string, unknown> = {},
): Record<string, unknown> {
  const known = task.options instanceof z.ZodObject ? Object.keys(task.options.shape) : [];
  for (const key of Object.keys(raw)) {
    if (known.length > 0 && !known.includes(key)) {
      throw new InputError(
        `task ${task.name}: unknown option "${key}"${suggestion(key, known)} (options: ${
          known.join(", ")
        })`,
      );
    }
  }
  const result = task.options.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue.path.map(String).join(".") || "(options)";
    const got = issue.path.length === 1
      ? ` (got ${JSON.stringify(raw[String(issue.path[0])])})`
      : "";
    throw new InputError(
      `task ${task.name}: option "${path}": ${
        issue.message.replace(/^./, (c) => c.toLowerCase())
      }${got}`,
    );
  }
  const options = result.data as Record<string, unknown>;
  if (typeof options.seed === "number" && (options.split === "eval" || options.split === "train")) {
    checkSeeds([options.seed], options.split, `task ${task.name}: seed`);
  }
  return options;
}

/** The samples of task `name` for raw options (validated first). */
export async function* taskSamples(
  name: string,
  raw: Record<string, unknown>,
  env: AdapterEnv,
): AsyncGenerator<Sample> {
  const task = getTask(name);
  const options = parseTaskOptions(task, raw);
  yield* task.samples(options, env);
}

for (const generator of GENERATORS) registerTask(generator);
for (const loader of LOADER_TASKS) registerTask(loader);
