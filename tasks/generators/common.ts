/**
 * What every generator shares: the options every generator takes (n, target length, seed,
 * split, depth), length fitting, and turning a generator's per-sample plan into a registered
 * adapter.
 *
 * A generator plans one sample from its random stream: the instruction, the queries (fixed
 * before fitting) and a `build(coarse, fine)` that writes the context from two unit counts.
 * Coarse units are the task's structure (haystack words, distractor needles, list items,
 * functions); fine units are a filler that leaves every answer unchanged (a few more words,
 * singleton list items, noise sentences), so the fitted prompt lands within a word or two of
 * the target. Fitting finds the largest coarse count whose prompt fits the target, then the
 * largest fine count (RULER's binary search on haystack units, made finer).
 *
 * @module
 */

import { z } from "zod";
import { InputError } from "../../errors.ts";
import type { TextTokenizer } from "../../engine/tokenizer.ts";
import { renderSamplePrompt, samplePromptTokens } from "../prompt.ts";
import type { AdapterEnv, PromptOptions, Query, Sample, SuiteName, TaskAdapter } from "../types.ts";
import { DEPTH_GRID } from "../haystack.ts";
import { Rng } from "./rng.ts";
import { checkSeeds, MAX_SEED, sampleId, sampleSeed, type SeedSplit } from "./seeds.ts";

/** Options every generator takes. */
export interface GeneratorOptions {
  /** Number of samples. */
  n: number;
  /** First sample index (samples are `start` … `start + n − 1`). */
  start: number;
  /** Base seed; its range decides the split (see seeds.ts). */
  seed: number;
  /** Which seed space the request is for; the seed must lie in it. */
  split: SeedSplit;
}

/** Options of length-controlled generators. */
export interface LengthOptions extends GeneratorOptions {
  /** Prompt length to fit, in tokens of the tokenizer given (prefix + context + query + postfix). */
  targetTokens: number;
  /** Needle depth in [0, 1], or "random": RULER's 40-point grid, drawn per sample. */
  depth: number | "random";
}

/** Zod shape of {@linkcode GeneratorOptions}. */
export const GENERATOR_OPTION_SHAPE = {
  n: z.number().int().min(1).default(20),
  start: z.number().int().min(0).default(0),
  seed: z.number().int().min(0).max(MAX_SEED).default(0),
  split: z.enum(["eval", "train"]).default("eval"),
};

/** Zod shape of {@linkcode LengthOptions}. */
export const LENGTH_OPTION_SHAPE = {
  ...GENERATOR_OPTION_SHAPE,
  targetTokens: z.number().int().min(32).max(4_000_000).default(4096),
  depth: z.union([z.number().min(0).max(1), z.literal("random")]).default("random"),
};

/** A sample before its length is fitted. */
export interface Plan {
  instruction: string;
  queries: Query[];
  /**
   * The context for `coarse` structural units and `fine` filler units. `queries`, when given,
   * replace the plan's in the sample: same prompts, answers that depend on the built text.
   */
  build(coarse: number, fine: number): Built;
  /** Smallest meaningful coarse count (default 1). */
  minCoarse?: number;
  /** Largest coarse count the plan can build (default unbounded). */
  maxCoarse?: number;
  /** Whether fine units exist (default true). */
  fine?: boolean;
  /** Largest fine count the plan can build (default unbounded). */
  maxFine?: number;
  meta?: Record<string, unknown>;
}

/** What a plan's `build` returns. */
export interface Built {
  context: string;
  queries?: Query[];
  meta?: Record<string, unknown>;
}

/** Per-sample inputs of a plan. */
export interface PlanInput<O> {
  rng: Rng;
  options: O;
  index: number;
  tokenizer: TextTokenizer;
}

/** The fitted result of a plan. */
export interface Fitted {
  context: string;
  queries: Query[];
  promptTokens: number;
  coarse: number;
  fine: number;
  meta: Record<string, unknown>;
}

/**
 * Largest x in [lo, cap] with tokens(x) ≤ target, given tokens(lo) ≤ target and tokens
 * non-decreasing. `tokens` is exact but costly (a full encode); `size` is cheap (characters of
 * the built text) and nearly proportional to it. Each round predicts the answer from the
 * average tokens per character measured so far, searching on `size` alone, then measures the
 * prediction exactly; the fit ends when x fits and x + 1 does not (about five encodes).
 */
export function fitCount(
  tokens: (x: number) => number,
  size: (x: number) => number,
  lo: number,
  target: number,
  cap: number,
): number {
  let good = lo;
  let bad = Infinity;
  const base = tokens(lo);
  const baseSize = size(lo);
  // Tokens per character beyond x = lo; until measured, one per character.
  let rate = 1;
  const predicted = (x: number) => base + rate * (size(x) - baseSize);
  for (let round = 0; round < 40 && good < cap && bad - good > 1; round++) {
    // The largest x the rate predicts to fit: gallop up from `good`, then bisect.
    let fits = good;
    let over = bad;
    let step = 1;
    while (over === Infinity || over - fits > 1) {
      const x = over === Infinity ? fits + step : Math.floor((fits + over) / 2);
      if (x > cap) {
        over = cap + 1;
        continue;
      }
      if (predicted(x) <= target) fits = x;
      else over = x;
      if (over === Infinity) step *= 2;
    }
    const x = Math.min(Math.max(fits, good + 1), bad - 1, cap);
    if (x <= good) break;
    const t = tokens(x);
    if (t <= target) good = x;
    else bad = x;
    const grown = size(x) - baseSize;
    if (grown > 0 && t > base) rate = (t - base) / grown;
  }
  // Rarely needed: plain bisection when the predictions stall.
  while (bad !== Infinity && bad - good > 1) {
    const mid = Math.floor((good + bad) / 2);
    if (tokens(mid) <= target) good = mid;
    else bad = mid;
  }
  return good;
}

/**
 * Fit a plan's context so the longest prompt of the sample is at most `targetTokens` and as
 * close to it as the units allow. A target below the smallest sample is an InputError.
 */
export function fitPlan(
  plan: Plan,
  tokenizer: TextTokenizer,
  options: { targetTokens: number; prompt?: PromptOptions; task: string },
): Fitted {
  const empty = renderSamplePrompt(tokenizer, {
    instruction: plan.instruction,
    context: "",
    queries: plan.queries,
  }, options.prompt);
  const overhead = samplePromptTokens(empty);
  const cache = new Map<string, number>();
  const sizes = new Map<string, number>();
  const measure = (coarse: number, fine: number): number => {
    const key = `${coarse}/${fine}`;
    let tokens = cache.get(key);
    if (tokens === undefined) {
      const { context } = plan.build(coarse, fine);
      tokens = overhead +
        (context.length === 0 ? 0 : tokenizer.encode(context, { addSpecialTokens: false }).length);
      cache.set(key, tokens);
      sizes.set(key, context.length);
    }
    return tokens;
  };
  const size = (coarse: number, fine: number): number => {
    const key = `${coarse}/${fine}`;
    let chars = sizes.get(key);
    if (chars === undefined) {
      chars = plan.build(coarse, fine).context.length;
      sizes.set(key, chars);
    }
    return chars;
  };
  const minCoarse = plan.minCoarse ?? 1;
  const smallest = measure(minCoarse, 0);
  if (smallest > options.targetTokens) {
    throw new InputError(
      `${options.task}: targetTokens ${options.targetTokens} is too small; the shortest sample takes ${smallest} tokens in ${tokenizer.dir}`,
    );
  }
  const target = options.targetTokens;
  const coarse = fitCount(
    (c) => measure(c, 0),
    (c) => size(c, 0),
    minCoarse,
    target,
    plan.maxCoarse ?? 50_000_000,
  );
  const fine = plan.fine === false ? 0 : fitCount(
    (f) => measure(coarse, f),
    (f) => size(coarse, f),
    0,
    target,
    plan.maxFine ?? 50_000_000,
  );
  const built = plan.build(coarse, fine);
  return {
    context: built.context,
    queries: built.queries ?? plan.queries,
    promptTokens: measure(coarse, fine),
    coarse,
    fine,
    meta: built.meta ?? {},
  };
}

/** Depth of a needle: the fixed option, or one of RULER's grid points. */
export function chooseDepth(rng: Rng, depth: number | "random"): number {
  return depth === "random" ? rng.pick(DEPTH_GRID) : depth;
}

/** `k` distinct depths: the fixed option for all, or distinct grid points, sorted. */
export function chooseDepths(rng: Rng, depth: number | "random", k: number): number[] {
  if (depth !== "random") return Array.from({ length: k }, () => depth);
  return rng.sample(DEPTH_GRID, k).sort((a, b) => a - b);
}

/** What a generator declares. */
export interface GeneratorSpec<O extends GeneratorOptions> {
  name: string;
  suite: SuiteName;
  description: string;
  /** The task's version (see `TaskAdapter.version`): bump it when its samples or grading change. */
  version: number;
  /** Options naming files the samples read (see {@linkcode TaskAdapter.fileOptions}). */
  fileOptions?: readonly string[];
  /** Options schema (extend {@linkcode LENGTH_OPTION_SHAPE} or {@linkcode GENERATOR_OPTION_SHAPE}). */
  options: z.ZodType<O>;
  /** Plan one sample. */
  plan(input: PlanInput<O>): Plan;
}

/** A generator adapter; `sample` makes one sample synchronously (tests, the corpus). */
export interface GeneratorAdapter<O extends GeneratorOptions = GeneratorOptions>
  extends TaskAdapter<O> {
  sample(options: O, env: AdapterEnv, index: number): Sample;
}

/**
 * Turn a generator spec into an adapter. Length-controlled generators (those whose options
 * have `targetTokens`) fit each sample; the others take the plan at its minimum size.
 */
export function defineGenerator<O extends GeneratorOptions>(
  spec: GeneratorSpec<O>,
): GeneratorAdapter<O> {
  const probe = spec.options.safeParse({});
  const lengthControlled = probe.success && "targetTokens" in (probe.data as object);
  function sample(options: O, env: AdapterEnv, index: number): Sample {
    checkSeeds([options.seed], options.split, `${spec.name}: seed`);
    const rng = new Rng(sampleSeed(spec.name, options.seed, index));
    const plan = spec.plan({ rng, options, index, tokenizer: env.tokenizer });
    const target = (options as unknown as Partial<LengthOptions>).targetTokens;
    let fitted: Fitted;
    if (lengthControlled && target !== undefined) {
      fitted = fitPlan(plan, env.tokenizer, {
        targetTokens: target,
        prompt: env.prompt,
        task: spec.name,
      });
    } else {
      const coarse = plan.minCoarse ?? 1;
      const built = plan.build(coarse, 0);
      const queries = built.queries ?? plan.queries;
      const prompt = renderSamplePrompt(env.tokenizer, {
        instruction: plan.instruction,
        context: built.context,
        queries,
      }, env.prompt);
      fitted = {
        context: built.context,
        queries,
        promptTokens: samplePromptTokens(prompt),
        coarse,
        fine: 0,
        meta: built.meta ?? {},
      };
    }
    return {
      id: sampleId(spec.name, options.seed, index),
      task: spec.name,
      instruction: plan.instruction,
      context: fitted.context,
      queries: fitted.queries,
      meta: {
        generator: spec.name,
        version: spec.version,
        seed: options.seed,
        split: options.split,
        index,
        ...(target !== undefined ? { targetTokens: target } : {}),
        promptTokens: fitted.promptTokens,
        units: { coarse: fitted.coarse, fine: fitted.fine },
        ...(plan.meta ?? {}),
        ...fitted.meta,
      },
    };
  }
  return {
    name: spec.name,
    suite: spec.suite,
    description: spec.description,
    version: spec.version,
    source: "generator",
    ...(spec.fileOptions === undefined ? {} : { fileOptions: spec.fileOptions }),
    lengthControlled,
    options: spec.options,
    sample,
    async *samples(options: O, env: AdapterEnv): AsyncIterable<Sample> {
      for (let i = 0; i < options.n; i++) yield sample(options, env, options.start + i);
    },
  };
}
