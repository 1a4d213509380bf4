/**
 * The four evaluation protocols, each turning one sample × one method into an answer per
 * budget and query (harness-anchors §4, themes "query-agnostic vs query-aware"):
 *
 * - `query-agnostic` (default, KVzip/Fast KVzip/SCBench): compress the context once per
 *   budget, answer every query from the same cache, restore it between queries. Methods whose
 *   scores do not depend on the budget are scored once and pruned at every budget.
 * - `query-aware` (SnapKV's original setting): context and query are prefilled together, then
 *   compressed, for every query.
 * - `decode` (reasoning): the whole prompt is prefilled, then eviction runs during generation
 *   under an absolute budget of entries per (layer, KV head) (spec §4).
 * - `chunked` (Fast KVzip's `eval_chunk.py`, spec §6.3): for every budget, the prompt is
 *   prefilled again in chunks of 16 000 tokens with eviction after each (spec §3), so later
 *   chunks attend to an already compressed cache; every query is answered from that cache.
 *   Below 16 000 context tokens it keeps what `query-agnostic` keeps. Methods without a
 *   chunked-prefill phase (KVzip, as `eval.py` runs it) are scored after one full prefill.
 *
 * In the prefill protocols only the context (and, query-aware, the query) is ever evicted; the
 * prompt prefix and the assistant opener stay. Their budgets are kept ratios r of those evictable
 * tokens, or (`budgetUnit` "tokens") evictable tokens kept per KV head: N becomes
 * r = min(1, N / evictable tokens) of each sample (and, query-aware, of each query), and budgets
 * that ask for one ratio (every N at or above the evictable tokens) share one compression.
 *
 * The decode protocol compresses the whole prompt as spec §4.3 does: only the first 4 positions
 * and each method's recent window are forced, so on a long-context task the question itself can
 * be evicted before the answer is written. Its rows describe the cache generation left: entries
 * and kept ratio over prompt and generated tokens, and the time the method spent scoring during
 * generation.
 *
 * @module
 */

import { generate, type GenerateOptions, type GenerateResult } from "../engine/generate.ts";
import type { Sampling } from "../engine/sampling.ts";
import { shortDigest } from "../digest.ts";
import { DEFAULT_PREFILL_CHUNK, type Model } from "../engine/model.ts";
import { InputError } from "../errors.ts";
import type { TextTokenizer } from "../engine/tokenizer.ts";
import type { KvStore } from "../kernels/kv_store.ts";
import {
  type AnyMethodDefinition,
  chunkedPrefillWithEviction,
  describeStore,
  type EvictionReport,
  generateWithEviction,
  getMethod,
  type MethodChoice,
  prefillAtRatios,
} from "../methods/mod.ts";
import { getMetric } from "../tasks/metrics/mod.ts";
import type { Query, Sample } from "../tasks/types.ts";
import type { BudgetUnit, Protocol } from "./config.ts";
import type { BudgetKind } from "./store.ts";

/** A sample's prompt as token ids, split where eviction may and may not act. */
export interface SampleIds {
  prefix: Int32Array;
  context: Int32Array;
  queries: { query: Int32Array; postfix: Int32Array }[];
}

/** What one query produced at one budget. */
export interface QueryOutcome {
  budget: number;
  budgetKind: BudgetKind;
  /** The kept ratio the compression asked (prefill protocols); NaN under the decode protocol. */
  keptRatioAsked: number;
  queryIndex: number;
  prediction: string;
  score: number;
  /**
   * Mean negative log-likelihood per token (nats) of the first reference answer, teacher-forced
   * on the same cache right after the query (lm-eval's loglikelihood, with its " " delimiter
   * after a prompt that does not end in white space); NaN where there is none to force (the
   * decode protocol, an empty reference).
   */
  answerNll: number;
  /** Why generation stopped (engine/generate.ts `StopReason`). */
  stopReason: string;
  generatedTokens: number;
  promptTokens: number;
  decodeMsPerToken: number;
  prefillMs: number;
  scoringMs: number;
  selectionMs: number;
  keptRatioAchieved: number;
  entriesKept: number;
  bytesHeld: number;
  bytesFull: number;
}

/** Everything a protocol needs besides the method. */
export interface ProtocolInput {
  model: Model<KvStore>;
  tokenizer: TextTokenizer;
  sample: Sample;
  ids: SampleIds;
  method: MethodChoice;
  /**
   * Kept ratios or context tokens per KV head (`budgetUnit`) under the prefill protocols,
   * entries per head under the decode protocol.
   */
  budgets: readonly number[];
  /** What the prefill protocols' budgets count; default "ratio". Decode's are entries per head. */
  budgetUnit?: BudgetUnit;
  /** Prefill lagging window: "spec" (2 % below 16k context tokens, else 4096) or tokens. */
  window: "spec" | number;
  chunkSize?: number;
  /** Sample answers instead of greedy decoding; `seed` is the sweep's. */
  sampling?: Sampling;
}

/** Tokens a reasoning model keeps for its answer after a capped thinking (spec §4.5). */
export const ANSWER_RESERVE = 2048;

/** What Fast KVzip's math runs append when thinking hits its cap (spec §4.5, verbatim). */
export const FORCED_ANSWER =
  "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n</think>.\n\n";

/**
 * How query `q` of the input is generated, as spec §4.5 does for the math runs:
 * - sampled when the sweep asks for it, from a stream seeded by the sweep's seed, the sample
 *   and the query, so a sample's answer does not depend on what ran before it or on the shard;
 * - with thinking on (`sample.prompt.thinking`) and more than {@linkcode ANSWER_RESERVE} new
 *   tokens allowed, thinking capped at `maxNewTokens − 2048` tokens, then
 *   {@linkcode FORCED_ANSWER} fed and generation continued, when the tokenizer has a single
 *   `</think>` token.
 */
export async function generationSettings(
  input: ProtocolInput,
  q: number,
): Promise<Pick<GenerateOptions<KvStore>, "sampling" | "thinkingBudget">> {
  const query = input.sample.queries[q];
  const out: Pick<GenerateOptions<KvStore>, "sampling" | "thinkingBudget"> = {};
  if (input.sampling !== undefined) {
    const digest = await shortDigest(JSON.stringify([input.sampling.seed, input.sample.id, q]));
    out.sampling = { ...input.sampling, seed: parseInt(digest.slice(0, 8), 16) };
  }
  const endThinkingId = input.tokenizer.tokenId("</think>");
  if (
    input.sample.prompt?.thinking === "on" && query.maxNewTokens > ANSWER_RESERVE &&
    endThinkingId !== null
  ) {
    out.thinkingBudget = {
      maxThinkingTokens: query.maxNewTokens - ANSWER_RESERVE,
      endThinkingId,
      forcedIds: Int32Array.from(
        input.tokenizer.encode(FORCED_ANSWER, { addSpecialTokens: false }),
      ),
    };
  }
  return out;
}

/**
 * The prefill window a method gets: a number as given; "spec" is §3.1–3.2's (2 % of the context
 * below 16k tokens, else 4096) for every method but those whose official evaluation keeps none
 * (`lagWindow: false`, KVzip), which get 0.
 */
export function specWindow(
  contextTokens: number,
  window: "spec" | number,
  method: MethodChoice,
): number {
  if (window !== "spec") return window;
  if (definitionOf(method).lagWindow === false) return 0;
  return contextTokens < 16_000 ? Math.floor(0.02 * contextTokens) : 4096;
}

function concat(...parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One compression of a prefill protocol: the kept ratio it asks and the budgets that ask it. */
export interface RatioStep {
  keptRatio: number;
  budgets: number[];
  /**
   * Under token budgets, the N the step keeps per KV head (the first of `budgets`; those of a
   * step at ratio 1 all keep every token), which the phases keep as that whole number rather
   * than as ⌊keptRatio·n⌋; null under kept ratios.
   */
  keptTokens: number | null;
}

/**
 * The compressions that answer `budgets` when `evictableTokens` may be evicted, largest ratio
 * first: a kept ratio as given (`unit` "ratio", the default); N tokens kept per KV head (`unit`
 * "tokens") as the ratio min(1, N / evictableTokens), so every N at or above `evictableTokens`
 * shares the one uncompressed step.
 *
 * @example
 * ```ts
 * ratioSteps([64, 512, 2048], 400, { unit: "tokens" });
 * // [{ keptRatio: 1, budgets: [512, 2048], keptTokens: 512 },
 * //  { keptRatio: 0.16, budgets: [64], keptTokens: 64 }]
 * ```
 */
export function ratioSteps(
  budgets: readonly number[],
  evictableTokens: number,
  options: { unit?: BudgetUnit } = {},
): RatioStep[] {
  const tokens = options.unit === "tokens";
  const steps = new Map<number, number[]>();
  for (const budget of budgets) {
    const keptRatio = !tokens ? budget : evictableTokens <= budget ? 1 : budget / evictableTokens;
    steps.set(keptRatio, [...steps.get(keptRatio) ?? [], budget]);
  }
  return [...steps.entries()].sort(([a], [b]) => b - a).map(([keptRatio, budgets]) => ({
    keptRatio,
    budgets,
    keptTokens: tokens ? budgets[0] : null,
  }));
}

/** What the phases are asked for `steps` under `unit`: kept ratios, or token budgets. */
function stepBudgets(
  steps: readonly RatioStep[],
  unit: BudgetUnit | undefined,
): { ratios: number[] } | { keptTokens: number[] } {
  return unit === "tokens"
    ? { keptTokens: steps.map((s) => s.keptTokens!) }
    : { ratios: steps.map((s) => s.keptRatio) };
}

/** The budget kind of a prefill protocol's rows under `unit`. */
function prefillKind(unit: BudgetUnit | undefined): BudgetKind {
  return unit === "tokens" ? "context_tokens" : "kept_ratio";
}

/** `outcomes` of one compression, once per budget that asked for it. */
function perBudget(
  outcomes: readonly Omit<QueryOutcome, "budget">[],
  step: RatioStep,
): QueryOutcome[] {
  return step.budgets.flatMap((budget) => outcomes.map((o) => ({ ...o, budget })));
}

function entriesHeld(report: EvictionReport): number {
  return report.entries.reduce((n, layer) => n + layer.reduce((a, b) => a + b, 0), 0);
}

/**
 * The answer to one query on top of `cache` (greedy unless the sweep samples), decoded without
 * special tokens and graded.
 */
async function answer(
  model: Model<KvStore>,
  cache: KvStore,
  input: ProtocolInput,
  index: number,
  ids: Int32Array,
): Promise<{ result: GenerateResult; prediction: string; score: number; answerNll: number }> {
  const query: Query = input.sample.queries[index];
  // The query is fed once: its last logits start both the reference's NLL and the answer.
  const startLogits = ids.length === 0
    ? undefined
    : await model.prefill(ids, cache, { chunkSize: input.chunkSize });
  const answerNll = startLogits === undefined
    ? NaN
    : await referenceNll(model, cache, input.tokenizer, startLogits, ids, query.answers[0], {
      chunkSize: input.chunkSize,
    });
  const result = await generate(model, cache, new Int32Array(0), {
    ...await generationSettings(input, index),
    startLogits,
    maxNewTokens: query.maxNewTokens,
    stopStrings: query.stopStrings,
    chunkSize: input.chunkSize,
    decode: (t) => decodeKnown(input.tokenizer, t),
  });
  const prediction = result.text ?? "";
  const score = getMetric(query.metric).score(prediction, query.answers, { meta: query.meta });
  return { result, prediction, score, answerNll };
}

/**
 * Mean negative log-likelihood per token of `reference` after a prompt that ends `cache`
 * (`ids`, its last tokens; `logits`, those of its last position, which predict the first
 * token): the reference's tokens but its last are fed, each position predicting the next, and
 * `cache` is left as it was. A reference after a prompt that does not end in white space gets a
 * leading space, as lm-eval's default target delimiter; NaN for an empty reference.
 *
 * The reference is fed in chunks of `options.chunkSize` tokens (default
 * {@linkcode DEFAULT_PREFILL_CHUNK}, as the prefill), each chunk's rows scored before the next
 * is forwarded, so at most chunk × vocabulary logits are held at once: a 1000-token reference
 * on a 152k vocabulary in one chunk would hold 600 MB of them.
 */
export async function referenceNll(
  model: Model<KvStore>,
  cache: KvStore,
  tokenizer: TextTokenizer,
  logits: Float32Array,
  ids: Int32Array,
  reference: string | undefined,
  options: { chunkSize?: number } = {},
): Promise<number> {
  if (reference === undefined || reference.trim() === "") return NaN;
  const last = ids.length === 0
    ? ""
    : tokenizer.decode([ids[ids.length - 1]], { skipSpecialTokens: false });
  const delimiter = /\s$/.test(last) || /^\s/.test(reference) ? "" : " ";
  const target = tokenizer.encode(delimiter + reference, { addSpecialTokens: false });
  if (target.length === 0) return NaN;
  // The reference's tokens but its last must fit the positions left; else there is no NLL.
  if (cache.nextPosition + target.length - 1 > model.config.maxPositionEmbeddings) return NaN;
  const chunk = options.chunkSize ?? DEFAULT_PREFILL_CHUNK;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new InputError(`chunk size: expected a positive integer, got ${options.chunkSize}`);
  }
  let total = -logSoftmaxAt(logits, target[0]);
  if (target.length > 1) {
    // Fed: every token but the last; the row of fed token t predicts token t + 1.
    const fed = Int32Array.from(target.slice(0, -1));
    const V = model.config.vocabSize;
    const mark = cache.mark();
    try {
      for (let start = 0; start < fed.length; start += chunk) {
        const end = Math.min(fed.length, start + chunk);
        const rows = await model.forward(fed.subarray(start, end), cache, { logits: "all" });
        for (let t = start; t < end; t++) {
          total -= logSoftmaxAt(rows.subarray((t - start) * V, (t - start + 1) * V), target[t + 1]);
        }
      }
    } finally {
      cache.restore(mark);
    }
  }
  return total / target.length;
}

/** log softmax(logits)[id], in f64. */
function logSoftmaxAt(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (const x of logits) if (x > max) max = x;
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  return logits[id] - max - Math.log(sum);
}

/** Decode, skipping ids the tokenizer does not know (padding rows of the embedding). */
function decodeKnown(tokenizer: TextTokenizer, ids: number[]): string {
  return tokenizer.decode(ids.filter((id) => tokenizer.token(id) !== null), {
    skipSpecialTokens: true,
  });
}

/** The definition of the method a protocol runs. */
function definitionOf(choice: MethodChoice): AnyMethodDefinition {
  return typeof choice.method === "string" ? getMethod(choice.method) : choice.method;
}

/**
 * Answer every query of the sample from `cache`, compressed for `at.step`, restoring it after
 * each answer; each row carries `report`'s figures and the given times, once per budget of the
 * step.
 */
async function answerEach(
  input: ProtocolInput,
  cache: KvStore,
  at: {
    step: RatioStep;
    report: EvictionReport;
    prefillMs: number;
    scoringMs: number;
    selectionMs: number;
  },
): Promise<QueryOutcome[]> {
  const { model, ids } = input;
  const { report } = at;
  const outcomes: Omit<QueryOutcome, "budget">[] = [];
  const mark = cache.mark();
  for (let q = 0; q < ids.queries.length; q++) {
    const qIds = concat(ids.queries[q].query, ids.queries[q].postfix);
    const { result, prediction, score, answerNll } = await answer(model, cache, input, q, qIds);
    outcomes.push({
      budgetKind: prefillKind(input.budgetUnit),
      keptRatioAsked: at.step.keptRatio,
      queryIndex: q,
      prediction,
      score,
      answerNll,
      stopReason: result.stopReason,
      generatedTokens: result.tokens.length,
      promptTokens: ids.prefix.length + ids.context.length + qIds.length,
      decodeMsPerToken: result.decodeMsPerToken,
      prefillMs: at.prefillMs,
      scoringMs: at.scoringMs,
      selectionMs: at.selectionMs,
      keptRatioAchieved: report.keptRatioAchieved,
      entriesKept: entriesHeld(report),
      bytesHeld: report.bytesHeld,
      bytesFull: report.nominalBytes,
    });
    cache.restore(mark);
  }
  return perBudget(outcomes, at.step);
}

async function queryAgnostic(input: ProtocolInput): Promise<QueryOutcome[]> {
  const { model, ids } = input;
  const outcomes: QueryOutcome[] = [];
  const steps = ratioSteps(input.budgets, ids.context.length, { unit: input.budgetUnit });
  const { prefillMs, cache } = await prefillAtRatios(model, {
    prefix: ids.prefix,
    context: ids.context,
  }, {
    ...input.method,
    ...stepBudgets(steps, input.budgetUnit),
    window: specWindow(ids.context.length, input.window, input.method),
    chunkSize: input.chunkSize,
    onRatio: async ({ keptRatio, cache, report, scoreMs }) => {
      outcomes.push(
        ...await answerEach(input, cache, {
          step: steps.find((s) => s.keptRatio === keptRatio)!,
          report,
          prefillMs: NaN, // filled in below: the prefill is shared by every ratio
          scoringMs: scoreMs,
          selectionMs: report.selectMs + report.compactMs,
        }),
      );
    },
  });
  cache.release();
  for (const o of outcomes) o.prefillMs = prefillMs;
  return outcomes;
}

async function queryAware(input: ProtocolInput): Promise<QueryOutcome[]> {
  const { model, ids } = input;
  const outcomes: QueryOutcome[] = [];
  for (let q = 0; q < ids.queries.length; q++) {
    // The query joins the evictable part (and a token budget's count); the assistant opener
    // stays outside the budget.
    const evictable = concat(ids.context, ids.queries[q].query);
    const steps = ratioSteps(input.budgets, evictable.length, { unit: input.budgetUnit });
    const perQuery: QueryOutcome[] = [];
    const { prefillMs, cache } = await prefillAtRatios(model, {
      prefix: ids.prefix,
      context: evictable,
    }, {
      ...input.method,
      ...stepBudgets(steps, input.budgetUnit),
      window: specWindow(evictable.length, input.window, input.method),
      chunkSize: input.chunkSize,
      onRatio: async ({ keptRatio, cache, report, scoreMs }) => {
        const { result, prediction, score, answerNll } = await answer(
          model,
          cache,
          input,
          q,
          ids.queries[q].postfix,
        );
        const step = steps.find((s) => s.keptRatio === keptRatio)!;
        perQuery.push(...perBudget([{
          budgetKind: prefillKind(input.budgetUnit),
          keptRatioAsked: keptRatio,
          queryIndex: q,
          prediction,
          score,
          answerNll,
          stopReason: result.stopReason,
          generatedTokens: result.tokens.length,
          promptTokens: ids.prefix.length + evictable.length + ids.queries[q].postfix.length,
          decodeMsPerToken: result.decodeMsPerToken,
          prefillMs: NaN,
          scoringMs: scoreMs,
          selectionMs: report.selectMs + report.compactMs,
          keptRatioAchieved: report.keptRatioAchieved,
          entriesKept: entriesHeld(report),
          bytesHeld: report.bytesHeld,
          bytesFull: report.nominalBytes,
        }], step));
      },
    });
    cache.release();
    for (const o of perQuery) o.prefillMs = prefillMs;
    outcomes.push(...perQuery);
  }
  return outcomes;
}

async function decodeProtocol(input: ProtocolInput): Promise<QueryOutcome[]> {
  const { model, ids } = input;
  const definition = definitionOf(input.method);
  const outcomes: QueryOutcome[] = [];
  for (const budget of input.budgets) {
    for (let q = 0; q < ids.queries.length; q++) {
      const prompt = concat(ids.prefix, ids.context, ids.queries[q].query, ids.queries[q].postfix);
      const query = input.sample.queries[q];
      const decode = (t: number[]) => decodeKnown(input.tokenizer, t);
      const settings = await generationSettings(input, q);
      let result: GenerateResult;
      let cache: KvStore;
      let selectionMs = 0;
      let scoringMs = 0;
      if (definition.phases.length === 0) {
        cache = model.createCache();
        result = await generate(model, cache, prompt, {
          ...settings,
          maxNewTokens: query.maxNewTokens,
          stopStrings: query.stopStrings,
          chunkSize: input.chunkSize,
          decode,
        });
      } else {
        const out = await generateWithEviction(model, prompt, {
          ...settings,
          maxNewTokens: query.maxNewTokens,
          stopStrings: query.stopStrings,
          chunkSize: input.chunkSize,
          decode,
          eviction: { ...input.method, entriesPerHead: budget },
        });
        result = out;
        cache = out.cache;
        selectionMs = out.evictions.reduce((t, e) => t + e.selectMs + e.compactMs, 0);
        scoringMs = out.scoreMs;
      }
      const prediction = result.text ?? "";
      const score = getMetric(query.metric).score(prediction, query.answers, { meta: query.meta });
      // Every figure describes the cache as generation left it (prompt and generated tokens).
      const final = describeStore(cache, { context: { start: 0, end: cache.nextPosition } });
      const bytesFull = cache.nominal();
      outcomes.push({
        budget,
        budgetKind: "entries_per_head",
        keptRatioAsked: NaN,
        queryIndex: q,
        prediction,
        score,
        // Eviction acts while generating: no one cache the reference could be forced on.
        answerNll: NaN,
        stopReason: result.stopReason,
        generatedTokens: result.tokens.length,
        promptTokens: prompt.length,
        decodeMsPerToken: result.decodeMsPerToken,
        prefillMs: result.prefillMs,
        scoringMs,
        selectionMs,
        keptRatioAchieved: final.keptRatioAchieved,
        entriesKept: final.entries.flat().reduce((a, b) => a + b, 0),
        bytesHeld: final.bytesHeld,
        bytesFull,
      });
      cache.release();
    }
  }
  return outcomes;
}

async function chunked(input: ProtocolInput): Promise<QueryOutcome[]> {
  const { model, ids } = input;
  if (!definitionOf(input.method).phases.includes("chunked-prefill")) {
    return await queryAgnostic(input);
  }
  const outcomes: QueryOutcome[] = [];
  const prompt = { prefix: ids.prefix, context: ids.context };
  for (const step of ratioSteps(input.budgets, ids.context.length, { unit: input.budgetUnit })) {
    const window = input.window === "spec" ? undefined : input.window;
    const run = await chunkedPrefillWithEviction(model, prompt, {
      ...input.method,
      ...(step.keptTokens === null
        ? { keptRatio: step.keptRatio }
        : { keptTokens: step.keptTokens }),
      // "spec": the phase's own rule (4096, or 2 % of a context shorter than a chunk).
      ...(window === undefined ? {} : { window, windowRatio: null }),
      chunkSize: input.chunkSize,
    });
    outcomes.push(
      ...await answerEach(input, run.cache, {
        step,
        report: run.report,
        prefillMs: run.prefillMs,
        scoringMs: run.scoreMs,
        selectionMs: run.evictions.reduce((t, e) => t + e.selectMs + e.compactMs, 0),
      }),
    );
    run.cache.release();
  }
  return outcomes;
}

/** Run `protocol` for one sample and one method over every budget. */
export function runProtocol(protocol: Protocol, input: ProtocolInput): Promise<QueryOutcome[]> {
  switch (protocol) {
    case "query-agnostic":
      return queryAgnostic(input);
    case "query-aware":
      return queryAware(input);
    case "decode":
      return decodeProtocol(input);
    case "chunked":
      return chunked(input);
  }
}
