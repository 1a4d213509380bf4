/**
 * The data every task adapter yields, generated or loaded: a sample is one context that several
 * queries share (the query-agnostic protocol compresses the context once and answers each query
 * from the same cache), and each query names the metric that grades it, by the name its
 * benchmark uses.
 *
 * @module
 */

import type { z } from "zod";
import type { TextTokenizer } from "../engine/tokenizer.ts";

/** The suites a task belongs to. */
export type SuiteName = "long-context" | "code" | "math";

/** Every suite, in listing order. */
export const SUITES: readonly SuiteName[] = ["long-context", "code", "math"];

/** One question about a sample's context. */
export interface Query {
  /**
   * The query text as the model sees it after the context (the prompt builder puts "\n\n"
   * before it, as the spec's layout does), e.g. "Q: Who founded Arvale?".
   */
  prompt: string;
  /** Reference answers; the metric says whether all, any or the first must match. */
  answers: string[];
  /** Metric name as the metrics registry knows it, e.g. "string_match_all". */
  metric: string;
  /** Tokens to generate at most. */
  maxNewTokens: number;
  /** Generation stops at the first of these (LongBench's samsum stops at a newline). */
  stopStrings?: string[];
  /**
   * Text the assistant turn starts with (RULER's answer prefix), placed after the postfix so
   * the model continues it; absent for most tasks, where the plain format cues the answer with
   * "Answer:". A blank one (empty or whitespace) says the query's own text ends with its cue
   * (LongBench's templates end in "Answer:", "Summary:", "The final answer is: "): the plain
   * format then puts only that whitespace after the query, and the chat format only its
   * assistant-turn opener.
   */
  answerPrefix?: string;
  /**
   * Extra grading inputs (e.g. RepoQA's `needles`) and descriptive fields. Generators may set
   * `completion`: the ideal model output (a worked solution, a fenced function) where it is
   * more than the answers joined; training corpora use it.
   */
  meta?: Record<string, unknown>;
}

/** One sample: a context shared by one or more queries. */
export interface Sample {
  /** Stable id, unique within its task, e.g. "niah_single_2/eval/s0/i17". */
  id: string;
  /** Registered task name. */
  task: string;
  /**
   * The line before the context (part of the never-evicted prefix). Absent: the spec's
   * default, {@linkcode DEFAULT_INSTRUCTION}.
   */
  instruction?: string;
  /** The context: the only part of the prompt subject to eviction. */
  context: string;
  /** The questions, answered one at a time from the same (compressed) context. */
  queries: Query[];
  /** Provenance and description: seed, target and actual lengths, depths, source row... */
  meta: Record<string, unknown>;
  /**
   * How the benchmark renders this sample, where it differs from the default frame: LongBench's
   * few-shot and code datasets without the chat template, math reasoning with thinking on and no
   * system message (spec §4.5). A sweep renders the sample with these options.
   */
  prompt?: PromptOptions;
}

/** The spec's instruction line for QA-style tasks (§6.2). */
export const DEFAULT_INSTRUCTION =
  "Given the context, answer to the following question or request without explanation.\n\n";

/** The spec's instruction line for GSM-style reasoning tasks (§6.2). */
export const REASONING_INSTRUCTION =
  "Given the context, answer to the following reasoning question.\n\n";

/** Where an adapter's samples come from. */
export type AdapterSource = "generator" | "loader";

/** What an adapter gets besides its options. */
export interface AdapterEnv {
  /** The tokenizer of the model under test: generators fit lengths in its tokens. */
  tokenizer: TextTokenizer;
  /** How prompts will be rendered (lengths are measured on the full prompt). */
  prompt?: PromptOptions;
}

/** How {@linkcode Sample}s become prompts (see tasks/prompt.ts). */
export interface PromptOptions {
  /**
   * "chat": the tokenizer's chat template (an error when it has none); "plain": instruction,
   * context and query concatenated, BOS as the tokenizer adds it; "auto" (default): chat when
   * the tokenizer has a template.
   */
  format?: "auto" | "chat" | "plain";
  /**
   * System message; default "You are a helpful assistant." with a chat template, as the spec's
   * prefixes have it, and none in the plain format. null: none.
   */
  systemPrompt?: string | null;
  /**
   * "off" (default, the spec's prefill tasks): the template is rendered with
   * `enable_thinking=false`, and a template that knows `<think>` gets the empty think block
   * after the assistant opener (Qwen3). "on": `enable_thinking=true`, no block.
   */
  thinking?: "off" | "on";
}

/**
 * A task: a name, a suite, an options schema and a source of samples. Register it with
 * `registerTask`; everything else (listing, validation, near-match errors) is the registry's.
 */
export interface TaskAdapter<Options = Record<string, unknown>> {
  /** Registered name, lower snake case (e.g. "niah_single_1"). */
  name: string;
  suite: SuiteName;
  /** One line: what the task asks. */
  description: string;
  /**
   * The task's version, a whole number from 1. Bump it whenever the same options would give
   * other samples or grade them otherwise: a changed generation or parsing rule, prompt, answer,
   * metric or scoring rule. It is part of every sweep cell id (rows of another version are never
   * reused on resume) and each row records it (`task_version`).
   */
  version: number;
  /** "loader" adapters read a benchmark file (their `path` option); generators make samples. */
  source: AdapterSource;
  /**
   * The options that name files the samples are read from (a loader's `path`, an essay
   * haystack): a sweep hashes each named file (SHA-256) into its cell ids and records the
   * digests in run.json, so an edited file makes new cells.
   */
  fileOptions?: readonly string[];
  /** True when the adapter fits samples to `targetTokens`. */
  lengthControlled: boolean;
  /**
   * False for a task reported only on its own: its cells stay in cells.csv and the report, but
   * its suite's averages leave it out (MRCR, which FastKVzip's headline excludes, spec §6.5).
   * Default true.
   */
  averaged?: boolean;
  /** Options schema; parsing fills defaults and rejects unknown keys. */
  options: z.ZodType<Options>;
  /** The samples, in a deterministic order. */
  samples(options: Options, env: AdapterEnv): AsyncIterable<Sample>;
}

/** A task adapter of any options type (options are checked by its schema at run time). */
// deno-lint-ignore no-explicit-any
export type AnyTaskAdapter = TaskAdapter<any>;
