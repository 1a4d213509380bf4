/**
 * The method registry: one map from id to {@linkcode MethodDefinition}. Built-in methods and
 * `gated` (Fast KVzip, in `gated.ts`) register through {@linkcode registerMethod} like any
 * plugin; `mod.ts` imports every built-in method module once.
 *
 * Lookups and parameter parsing fail with an {@linkcode InputError} whose one-line message
 * names the method or parameter, says what was expected and suggests near matches.
 *
 * @example
 * ```ts
 * import { getMethod, parseMethodParams, parseParamArgs } from "./registry.ts";
 * const snap = getMethod("snapkv");
 * const params = parseMethodParams(snap, parseParamArgs(snap, ["window=64"]));
 * ```
 *
 * @module
 */

import { z } from "zod";
import { InputError, nearMatches } from "../errors.ts";
import {
  type AnyMethodDefinition,
  type DecodeDefaults,
  type Phase,
  PHASES,
  type PolicySpec,
  SELECTION_POLICIES,
  type Signal,
  SIGNALS,
} from "./types.ts";

const registry = new Map<string, AnyMethodDefinition>();

const ID_PATTERN = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * Add a method. A definition that cannot work is refused with an {@linkcode InputError} whose
 * one line names the method and what is wrong: a malformed or taken id, params that are not a
 * zod object or whose defaults do not validate, an unknown phase, signal or policy, a decode
 * phase without decode defaults, no `createScorer`, a version that is neither a whole number
 * ≥ 1 nor a non-empty string. Plugins register when their module is imported, so the CLI
 * reports these before any command runs.
 */
export function registerMethod(definition: AnyMethodDefinition): void {
  const { id } = definition;
  const refuse = (what: string) => new InputError(`registerMethod(${id}): ${what}`);
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    throw new InputError(
      `registerMethod: id ${JSON.stringify(id)} must be lower-case kebab (e.g. "snapkv")`,
    );
  }
  if (registry.has(id)) {
    throw refuse(`the id is already registered (by ${registry.get(id)!.title}); pick another`);
  }
  if (!(definition.params instanceof z.ZodObject)) {
    throw refuse("params must be a z.object(...) schema");
  }
  if (typeof definition.createScorer !== "function") {
    throw refuse("createScorer must be a function (params, context) => Scorer");
  }
  const { version } = definition;
  if (
    version !== undefined &&
    !(Number.isInteger(version) && (version as number) >= 1) &&
    !(typeof version === "string" && version.trim() !== "")
  ) {
    throw refuse(
      `version must be a whole number ≥ 1 or a non-empty string, got ${JSON.stringify(version)}`,
    );
  }
  for (const hook of ["artifacts", "extraPositions", "layerBudgets"] as const) {
    if (definition[hook] !== undefined && typeof definition[hook] !== "function") {
      throw refuse(`${hook} must be a function`);
    }
  }
  for (const phase of definition.phases) {
    if (!PHASES.includes(phase)) throw refuse(`unknown phase "${phase}" (phases: ${PHASES})`);
  }
  for (const signal of definition.signals) {
    if (!SIGNALS.includes(signal)) throw refuse(`unknown signal "${signal}" (signals: ${SIGNALS})`);
  }
  checkPolicy(definition.policy, refuse);
  if (definition.phases.includes("decode")) {
    if (definition.decode === undefined) {
      throw refuse(`acts in "decode" but declares no decode defaults`);
    }
    checkPolicy(definition.decode.policy, refuse);
    if (!Number.isInteger(definition.decode.window) || definition.decode.window < 0) {
      throw refuse("decode window must be a non-negative integer");
    }
  }
  // The defaults must validate (zod 4 returns a default without checking it).
  const parsed = definition.params.safeParse({});
  const badDefault = Object.entries(objectShape(definition)).find(([, field]) => {
    const def = defOf(field);
    return def.type === "default" && !def.innerType!.safeParse(def.defaultValue).success;
  });
  if (badDefault !== undefined) {
    throw refuse(`the default of parameter "${badDefault[0]}" does not validate`);
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw refuse(
      `parameter "${issue.path.join(".")}" has no valid default (${issue.message}); ` +
        "every parameter needs .default(...)",
    );
  }
  registry.set(id, definition);
}

function checkPolicy(spec: PolicySpec, refuse: (what: string) => InputError): void {
  if (!SELECTION_POLICIES.includes(spec.policy)) {
    throw refuse(`unknown policy "${spec.policy}" (policies: ${SELECTION_POLICIES})`);
  }
  const alpha = spec.safeguard ?? 0;
  if (!(alpha >= 0 && alpha <= 1)) throw refuse(`safeguard must be in [0, 1], got ${alpha}`);
}

/** Remove a method (tests, hot reloading). Returns whether it was registered. */
export function unregisterMethod(id: string): boolean {
  return registry.delete(id);
}

/** Every registered method, in registration order. */
export function listMethods(): AnyMethodDefinition[] {
  return [...registry.values()];
}

/** The method registered as `id`, or an InputError naming near matches. */
export function getMethod(id: string): AnyMethodDefinition {
  const found = registry.get(id);
  if (found !== undefined) return found;
  const ids = [...registry.keys()];
  const near = nearMatches(id, ids);
  const hint = near.length > 0 ? ` (did you mean ${near.map((n) => `"${n}"`).join(" or ")}?)` : "";
  throw new InputError(
    `method: unknown method "${id}"${hint}; registered: ${ids.join(", ") || "none"}`,
  );
}

/** One parameter as {@linkcode describeMethod} shows it. */
export interface ParamDescription {
  name: string;
  /** "number", "integer", "boolean", "string", or the enum's values joined by "|". */
  type: string;
  default: unknown;
  description: string;
}

/** A method as the CLI and the docs show it. */
export interface MethodDescription {
  id: string;
  title: string;
  summary: string;
  paper: { title: string; url: string } | null;
  params: ParamDescription[];
  signals: readonly Signal[];
  phases: readonly Phase[];
  ratioIndependent: boolean;
  policy: PolicySpec;
  decode: DecodeDefaults | null;
}

/** A plain description of the method registered as `id`. */
export function describeMethod(id: string): MethodDescription {
  const m = getMethod(id);
  const shape = objectShape(m);
  const params: ParamDescription[] = Object.entries(shape).map(([name, field]) => ({
    name,
    type: fieldKind(field).label,
    default: defaultOf(field),
    description: field.description ?? "",
  }));
  return {
    id: m.id,
    title: m.title,
    summary: m.summary,
    paper: m.paper,
    params,
    signals: m.signals,
    phases: m.phases,
    ratioIndependent: m.ratioIndependent,
    policy: m.policy,
    decode: m.decode ?? null,
  };
}

/**
 * Validate `raw` against the method's schema and fill the defaults. Unknown or invalid
 * parameters are an InputError naming the parameter and what was expected.
 */
export function parseMethodParams<P>(
  method: { id: string; params: z.ZodType<P> },
  raw: Record<string, unknown> = {},
): P {
  const shape = method.params instanceof z.ZodObject ? method.params.shape : {};
  const known = Object.keys(shape);
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) throw unknownParam(method.id, key, known);
  }
  const result = method.params.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const name = issue.path.map(String).join(".") || "(parameters)";
  const got = issue.path.length > 0 ? ` (got ${JSON.stringify(valueAt(raw, issue.path))})` : "";
  throw new InputError(
    `method ${method.id}: parameter "${name}": ${
      issue.message.replace(/^./, (c) => c.toLowerCase())
    }${got}`,
  );
}

/**
 * Turn CLI `key=value` strings into raw parameters, converting each value to the field's type
 * (number, boolean, string or enum) as the schema declares it.
 *
 * @example
 * ```ts
 * parseParamArgs(getMethod("snapkv"), ["window=64", "pool=avg"]); // { window: 64, pool: "avg" }
 * ```
 */
export function parseParamArgs(
  method: { id: string; params: z.ZodType<unknown> },
  args: readonly string[],
): Record<string, unknown> {
  const shape = method.params instanceof z.ZodObject ? method.params.shape : {};
  const known = Object.keys(shape);
  const out: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq <= 0) {
      throw new InputError(`--param "${arg}": expected key=value (e.g. window=32)`);
    }
    const key = arg.slice(0, eq);
    const text = arg.slice(eq + 1);
    if (!known.includes(key)) throw unknownParam(method.id, key, known);
    if (key in out) throw new InputError(`--param ${key}: given more than once`);
    const kind = fieldKind(shape[key] as z.ZodType);
    out[key] = convert(method.id, key, text, kind);
  }
  return out;
}

interface FieldKind {
  base: "number" | "boolean" | "string" | "enum" | "other";
  label: string;
  values?: string[];
  integer?: boolean;
}

function convert(id: string, key: string, text: string, kind: FieldKind): unknown {
  const fail = (expected: string): InputError =>
    new InputError(`method ${id}: parameter "${key}" expects ${expected}, got "${text}"`);
  switch (kind.base) {
    case "number": {
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n)) {
        throw fail(kind.integer ? "an integer" : "a number");
      }
      return n;
    }
    case "boolean": {
      const t = text.toLowerCase();
      if (t === "true" || t === "1" || t === "yes") return true;
      if (t === "false" || t === "0" || t === "no") return false;
      throw fail("true or false");
    }
    case "enum":
      if (!kind.values!.includes(text)) throw fail(`one of ${kind.values!.join(", ")}`);
      return text;
    case "string":
      return text;
    default: {
      // A union or another shape: numbers and booleans as such, the rest as text.
      if (text === "true" || text === "false") return text === "true";
      const n = Number(text);
      return text.trim() !== "" && Number.isFinite(n) ? n : text;
    }
  }
}

function unknownParam(id: string, key: string, known: string[]): InputError {
  const near = nearMatches(key, known);
  const hint = near.length > 0 ? ` (did you mean "${near[0]}"?)` : "";
  return new InputError(
    `method ${id}: unknown parameter "${key}"${hint}; parameters: ${known.join(", ") || "none"}`,
  );
}

function valueAt(raw: Record<string, unknown>, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) v = (v as Record<PropertyKey, unknown> | undefined)?.[p];
  return v;
}

function objectShape(m: AnyMethodDefinition): Record<string, z.ZodType> {
  return m.params instanceof z.ZodObject ? m.params.shape as Record<string, z.ZodType> : {};
}

/** The zod internals this file reads: a schema's def and, for wrappers, the inner schema. */
interface ZodDef {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  entries?: Record<string, string>;
  checks?: { _zod: { def: { check?: string; format?: string } } }[];
}

function defOf(schema: z.ZodType): ZodDef {
  return (schema as unknown as { _zod: { def: ZodDef } })._zod.def;
}

/** Unwrap default/optional/nullable/readonly and classify the inner schema. */
function fieldKind(schema: z.ZodType): FieldKind {
  let def = defOf(schema);
  while (def.innerType !== undefined) def = defOf(def.innerType);
  switch (def.type) {
    case "number": {
      const integer = (def.checks ?? []).some((c) => c._zod.def.format === "safeint") ||
        (schema instanceof z.ZodNumber && schema.isInt === true);
      return { base: "number", label: integer ? "integer" : "number", integer };
    }
    case "boolean":
      return { base: "boolean", label: "boolean" };
    case "string":
      return { base: "string", label: "string" };
    case "enum": {
      const values = Object.values(def.entries ?? {}).map(String);
      return { base: "enum", label: values.join("|"), values };
    }
    default:
      return { base: "other", label: def.type };
  }
}

function defaultOf(schema: z.ZodType): unknown {
  let def = defOf(schema);
  while (def.innerType !== undefined) {
    if (def.type === "default") return def.defaultValue;
    def = defOf(def.innerType);
  }
  return undefined;
}

/** Shared with the task and metric registries and the sweep config. */
export { levenshtein, nearMatches } from "../errors.ts";
