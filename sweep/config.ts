/**
 * The sweep config: models × methods × budgets × tasks, one protocol, a backend, a seed and an
 * output directory. A JSON file (comments and trailing commas allowed) validated with zod;
 * every problem is reported with its path, and unknown method or task names suggest near
 * matches. CLI flags override the file, which overrides the defaults.
 *
 * @module
 */

import { isAbsolute, relative, resolve } from "node:path";
import { parse as parseJsonc, type ParseError, printParseErrorCode } from "jsonc-parser";
import { z } from "zod";
import { InputError, nearMatches } from "../errors.ts";
import {
  getMethod,
  parseMethodParams,
  type PolicySpec,
  SELECTION_POLICIES,
  type SelectionPolicy,
} from "../methods/mod.ts";
import { listTasks, resolveTasks, SUITES } from "../tasks/mod.ts";
import type { BudgetKind } from "./store.ts";

/** How queries meet the compressed cache (see README / DESIGN §6). */
export const PROTOCOLS = ["query-agnostic", "query-aware", "decode", "chunked"] as const;
/** A protocol. */
export type Protocol = typeof PROTOCOLS[number];

/** The kept ratios of the paper's sweeps, plus 0.1. */
export const DEFAULT_KEPT_RATIOS: readonly number[] = [1, 0.75, 0.5, 0.4, 0.3, 0.2, 0.1];

/**
 * What the prefill protocols' `budgets` count: "ratio", kept ratios r of the evictable tokens
 * (KVzip's convention); "tokens", context tokens kept per KV head (KVCache-Factory's
 * `--max_capacity_prompts`, as SnapKV and PyramidKV report), each turned into the ratio
 * min(1, N / evictable tokens) of every sample.
 */
export const BUDGET_UNITS = ["ratio", "tokens"] as const;
/** A budget unit. */
export type BudgetUnit = typeof BUDGET_UNITS[number];

const methodEntry = z.object({
  id: z.string().min(1).describe("registered method id (deno task list)"),
  params: z.record(z.string(), z.unknown()).default({}).describe("method parameters"),
  policy: z.enum(SELECTION_POLICIES as unknown as [string, ...string[]]).optional()
    .describe("selection policy; default the method's"),
  safeguard: z.number().min(0).max(1).optional()
    .describe("AdaKV safeguard fraction α (0 = none); default the method's"),
}).strict();

const taskEntry = z.object({
  task: z.string().min(1).describe("a task or a suite (long-context, code, math)"),
  n: z.number().int().min(1).optional().describe("samples per length and seed"),
  lengths: z.array(z.number().int().min(32)).min(1).optional()
    .describe("target prompt lengths in tokens of the model under test"),
  seeds: z.array(z.number().int().min(0)).min(1).optional().describe("evaluation seeds"),
  options: z.record(z.string(), z.unknown()).default({}).describe("other adapter options"),
}).strict();

/** The config schema (also exported as JSON Schema for editors). */
export const SweepConfigSchema = z.object({
  $schema: z.string().optional(),
  models: z.array(z.string().min(1)).min(1).describe("Hugging Face model directories"),
  methods: z.array(z.union([z.string().min(1), methodEntry])).min(1)
    .describe("method ids, or {id, params, policy, safeguard}"),
  budgets: z.array(z.number().gt(0)).min(1).default([...DEFAULT_KEPT_RATIOS])
    .describe(
      'kept ratios r in (0, 1] of the context (0.3 = evict 70 %), or with budgetUnit "tokens" ' +
        "context tokens kept per KV head (whole numbers)",
    ),
  budgetUnit: z.enum(BUDGET_UNITS).default("ratio")
    .describe(
      'what budgets count: "ratio" (kept ratios) or "tokens" (context tokens kept per KV head, ' +
        "min(1, N / context tokens) of each sample); not for the decode protocol",
    ),
  decodeBudgets: z.array(z.number().int().min(1)).min(1).default([256, 128])
    .describe("decode protocol: average entries kept per (layer, KV head)"),
  tasks: z.array(z.union([z.string().min(1), taskEntry])).min(1)
    .describe("task or suite names, or {task, n, lengths, seeds, options}"),
  protocol: z.enum(PROTOCOLS).default("query-agnostic"),
  backend: z.enum(["auto", "cpu", "webgpu"]).default("cpu")
    .describe("cpu (onnxruntime), webgpu, or auto: WebGPU on a non-fallback adapter, else cpu"),
  seed: z.number().int().min(0).default(0)
    .describe("seed of methods' randomness and of sampling's draws"),
  sampling: z.object({
    temperature: z.number().gt(0).describe("divides the logits"),
    topP: z.number().gt(0).lte(1).default(1).describe("nucleus mass"),
    topK: z.number().int().min(0).default(0).describe("most likely tokens kept first (0: all)"),
  }).strict().optional().describe(
    "sample answers (HF's temperature, top-k, top-p; the math runs of Fast KVzip use " +
      "temperature 0.6, top-p 0.95) instead of greedy decoding; each query draws from its own " +
      "stream, seeded by seed, sample and query",
  ),
  out: z.string().min(1).default("runs/default").describe("run directory"),
  chunkSize: z.number().int().min(1).optional().describe("prefill forward chunk in tokens"),
  window: z.union([z.literal("spec"), z.number().int().min(0)]).default("spec")
    .describe(
      'prefill lagging window in tokens, or "spec": 2 % of the context below 16k tokens, else ' +
        "4096, and none for methods whose official evaluation keeps none (kvzip)",
    ),
}).strict();

/** A parsed, validated sweep config with every default filled in. */
export type SweepConfig = z.infer<typeof SweepConfigSchema>;

/** A method as the planner uses it. */
export interface MethodSpec {
  id: string;
  params: Record<string, unknown>;
  /** Overrides the policy of the method's default selection; see {@linkcode methodPolicy}. */
  policy?: string;
  /** Overrides the safeguard of the method's default selection; see {@linkcode methodPolicy}. */
  safeguard?: number;
}

/** A task entry with defaults applied. */
export interface TaskSpec {
  task: string;
  n?: number;
  lengths?: number[];
  seeds?: number[];
  options: Record<string, unknown>;
}

/** Methods in their object form. */
export function methodSpecs(config: SweepConfig): MethodSpec[] {
  return config.methods.map((m) => (typeof m === "string" ? { id: m, params: {} } : m));
}

/**
 * The selection a method entry runs under `protocol`, or null for a method that never evicts
 * (`full`). It starts from the method's default selection (its decode policy under the decode
 * protocol, its `policy` otherwise), and the entry's `policy` and `safeguard` each override
 * their own part of it: `{ "id": "kvzip", "safeguard": 0.2 }` runs KVzip's global policy with
 * the safeguard, `{ "id": "expected-attention", "policy": "global" }` keeps that method's
 * safeguard 0.2, and `"safeguard": 0` turns a default one off. The per-head policy gives every
 * head its own top-k already, so the safeguard, which only shapes the per-layer and global
 * thresholds, is left out of it (validation refuses an entry that asks for one there).
 *
 * @example
 * ```ts
 * methodPolicy({ id: "kvzip", params: {}, safeguard: 0.2 }, "query-agnostic");
 * // { policy: "global", safeguard: 0.2 }
 * ```
 */
export function methodPolicy(spec: MethodSpec, protocol: Protocol): PolicySpec | null {
  const def = getMethod(spec.id);
  if (def.phases.length === 0) return null;
  const base = protocol === "decode" ? def.decode?.policy ?? def.policy : def.policy;
  const policy = (spec.policy ?? base.policy) as SelectionPolicy;
  const safeguard = spec.safeguard ?? base.safeguard ?? 0;
  return policy === "per-head" || safeguard === 0 ? { policy } : { policy, safeguard };
}

/**
 * Why a method entry's safeguard would do nothing, or null when it acts (or none is asked for):
 * on a method that never evicts, or under the per-head policy.
 */
function idleSafeguard(spec: MethodSpec, protocol: Protocol): string | null {
  if (spec.safeguard === undefined || spec.safeguard === 0) return null;
  const selection = methodPolicy(spec, protocol);
  const asked = `safeguard ${spec.safeguard} has no effect`;
  if (selection === null) return `${asked}: method ${spec.id} never evicts`;
  if (selection.policy !== "per-head") return null;
  const whose = spec.policy === undefined
    ? `, ${spec.id}'s default${protocol === "decode" ? " while decoding" : ""}`
    : "";
  return `${asked} under the per-head policy${whose} (every head keeps its own top entries); ` +
    'set "policy" to "per-layer" (AdaKV\'s) or "global"';
}

/**
 * What a sweep's budgets count, as its rows record it: entries per head under the decode
 * protocol (`decodeBudgets`), else kept ratios or context tokens per KV head (`budgetUnit`).
 *
 * @example
 * ```ts
 * budgetKind({ protocol: "query-agnostic", budgetUnit: "tokens" }); // "context_tokens"
 * ```
 */
export function budgetKind(config: Pick<SweepConfig, "protocol" | "budgetUnit">): BudgetKind {
  if (config.protocol === "decode") return "entries_per_head";
  return config.budgetUnit === "tokens" ? "context_tokens" : "kept_ratio";
}

/** Tasks in their object form. */
export function taskSpecs(config: SweepConfig): TaskSpec[] {
  return config.tasks.map((t) => (typeof t === "string" ? { task: t, options: {} } : t));
}

/** The JSON Schema of the config, for editors (`"$schema": "./sweep.schema.json"`). */
export function sweepJsonSchema(): Record<string, unknown> {
  // The input side: what a config file may leave out (every field with a default) is optional.
  return z.toJSONSchema(SweepConfigSchema, { io: "input" }) as Record<string, unknown>;
}

function issuePath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? "(config)" : path.map(String).join(".");
}

/**
 * Validate a config object: the schema first, then every method id, parameter set and task
 * name against the registries. All problems are listed, each on its own line with its path.
 */
export function validateSweepConfig(raw: unknown, source = "sweep config"): SweepConfig {
  const problems: string[] = [];
  const parsed = SweepConfigSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issuePath(issue.path)}: ${issue.message}`);
    }
    problems.push(...budgetProblems(raw));
    throw configError(source, problems);
  }
  problems.push(...budgetProblems(raw));
  const config = parsed.data;
  config.models = config.models.map(canonicalModelPath);
  methodSpecs(config).forEach((m, i) => {
    try {
      const def = getMethod(m.id);
      parseMethodParams(def, m.params);
      // The phase the protocol evicts in (chunked falls back to one-shot prefill, as eval.py).
      const phase = config.protocol === "decode" ? "decode" : "prefill";
      const runs = def.phases.length === 0 || def.phases.includes(phase) ||
        (config.protocol === "chunked" && def.phases.includes("chunked-prefill"));
      if (!runs) {
        problems.push(
          `methods.${i}: method ${m.id} does not act in phase "${phase}", which the ` +
            `${config.protocol} protocol evicts in (its phases: ${def.phases.join(", ")})`,
        );
      } else {
        const idle = idleSafeguard(m, config.protocol);
        if (idle !== null) problems.push(`methods.${i}: ${idle}`);
      }
    } catch (error) {
      problems.push(`methods.${i}: ${(error as Error).message}`);
    }
  });
  const known = [...SUITES, ...listTasks().map((t) => t.name)];
  taskSpecs(config).forEach((t, i) => {
    if (!known.includes(t.task)) {
      const near = nearMatches(t.task, known);
      problems.push(
        `tasks.${i}: unknown task or suite "${t.task}"${
          near.length > 0 ? ` (did you mean ${near.map((n) => `"${n}"`).join(" or ")}?)` : ""
        }`,
      );
    } else if (t.lengths !== undefined && !resolveTasks([t.task]).some((a) => a.lengthControlled)) {
      problems.push(
        `tasks.${i}.lengths: ${t.task} is not generated at a target length (expected no lengths)`,
      );
    }
  });
  if (problems.length > 0) throw configError(source, problems);
  return config;
}

/**
 * What the schema cannot say about `budgets`, read from the config as given (so a default is
 * told from a value, and these problems are listed beside the schema's): kept ratios above 1, a
 * budget unit the decode protocol has no use for, and under `budgetUnit` "tokens", budgets that
 * are not whole numbers, or none given (the defaults are kept ratios).
 */
function budgetProblems(raw: unknown): string[] {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return [];
  const { budgets, budgetUnit, protocol } = raw as Record<string, unknown>;
  if (budgetUnit !== undefined && protocol === "decode") {
    return [
      `budgetUnit: the decode protocol takes no budget unit; its budgets are decodeBudgets ` +
      `(entries kept per KV head)`,
    ];
  }
  // Anything else is the schema's to name.
  if (budgetUnit !== undefined && !(BUDGET_UNITS as readonly unknown[]).includes(budgetUnit)) {
    return [];
  }
  const positive = (b: unknown): b is number => typeof b === "number" && b > 0;
  if (budgetUnit !== "tokens") {
    if (!Array.isArray(budgets)) return [];
    return budgets.flatMap((b, i) =>
      positive(b) && b > 1
        ? [
          `budgets.${i}: expected a kept ratio in (0, 1], got ${b} (for context tokens kept ` +
          `per KV head, set budgetUnit "tokens")`,
        ]
        : []
    );
  }
  const example = '(e.g. "budgets": [128, 512, 2048], or --budgets 128,512,2048)';
  if (budgets === undefined || sameNumbers(budgets, DEFAULT_KEPT_RATIOS)) {
    return [
      `budgets: the default budgets are kept ratios; with budgetUnit "tokens" give budgets in ` +
      `context tokens kept per KV head ${example}`,
    ];
  }
  if (!Array.isArray(budgets)) return [];
  const numbers = budgets.filter(positive);
  if (
    numbers.length === budgets.length && numbers.every((b) => b <= 1) &&
    numbers.some((b) => !Number.isInteger(b))
  ) {
    return [
      `budgets: with budgetUnit "tokens" budgets are context tokens kept per KV head, but ` +
      `${JSON.stringify(budgets)} are kept ratios; give token budgets ${example}`,
    ];
  }
  return budgets.flatMap((b, i) =>
    positive(b) && !Number.isInteger(b)
      ? [
        `budgets.${i}: with budgetUnit "tokens", expected a whole number of context tokens ` +
        `kept per KV head, got ${b}`,
      ]
      : []
  );
}

function sameNumbers(a: unknown, b: readonly number[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One problem on one line; several as a count, then one indented line each. */
function configError(source: string, problems: string[]): InputError {
  if (problems.length === 1) return new InputError(`${source}: ${problems[0]}`);
  return new InputError(`${source}: ${problems.length} problems\n  ${problems.join("\n  ")}`);
}

/**
 * The form of a model directory that names it in cell ids and rows, so one directory written
 * two ways (`./models/x/`, `models/x`, its absolute path) is one model: normalised, without a
 * trailing slash, and relative to the working directory when inside it.
 *
 * @example
 * ```ts
 * canonicalModelPath("./models/organism-qwen3-10m/"); // "models/organism-qwen3-10m"
 * ```
 */
export function canonicalModelPath(path: string): string {
  const absolute = resolve(path);
  const inside = relative(Deno.cwd(), absolute);
  const chosen = inside !== "" && !inside.startsWith("..") && !isAbsolute(inside)
    ? inside
    : absolute;
  return chosen.replace(/\/+$/, "") || "/";
}

/**
 * Read a config file (JSON with comments and trailing commas allowed) as the raw object; give
 * it to {@linkcode validateSweepConfig} for a {@linkcode SweepConfig}.
 *
 * @throws {InputError} naming `path` when it cannot be read, is not JSON (each error with its
 * line) or is not an object.
 */
export async function readSweepConfig(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new InputError(`${path}: cannot read the sweep config (${(error as Error).message})`);
  }
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true });
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const line = text.slice(0, e.offset).split("\n").length;
      return `${path}:${line}: ${printParseErrorCode(e.error)}`;
    });
    throw new InputError(`${path}: not valid JSON\n  ${lines.join("\n  ")}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InputError(`${path}: expected a JSON object at the top level`);
  }
  return value as Record<string, unknown>;
}

/** The task adapters a task entry names (a suite expands to its generators). */
export function resolveTaskNames(entry: TaskSpec): string[] {
  return resolveTasks([entry.task]).map((t) => t.name);
}
