/**
 * Generation over a KV store: prefill the prompt (chunked), then decode one token at a time,
 * greedy or sampled (engine/sampling.ts), until an end-of-sequence id, a stop string or the
 * token limit. A thinking budget forces a reasoning model out of its thinking, as Fast KVzip's
 * math runs do.
 *
 * @module
 */

import type { CpuKvStore, KvStore } from "../kernels/kv_store.ts";
import type { ForwardTaps, Model } from "./model.ts";
import { type Sampling, tokenChooser } from "./sampling.ts";

export { argmax } from "./sampling.ts";

/**
 * Why generation stopped: an eos id, a stop string, `maxNewTokens`, or "max-positions": the
 * next token would have stood beyond the model's `max_position_embeddings`.
 */
export type StopReason = "eos" | "stop-string" | "max-new-tokens" | "max-positions";

/** Options of {@linkcode generate}; S is the model's store type. */
export interface GenerateOptions<S extends KvStore = CpuKvStore> {
  maxNewTokens: number;
  /** End-of-sequence ids; default the model's (generation_config.json first). */
  eosTokenIds?: readonly number[];
  /** Stop when the decoded completion contains one of these; the text is cut before it. */
  stopStrings?: readonly string[];
  /** Turns ids into text; required with stopStrings. */
  decode?: (ids: number[]) => string;
  /** Prefill chunk size in tokens; default the model's DEFAULT_PREFILL_CHUNK. */
  chunkSize?: number;
  /** Observers of the prompt's prefill. */
  prefillTaps?: ForwardTaps;
  /** Observers of every decode step (e.g. hidden states for decode-time scoring). */
  decodeTaps?: ForwardTaps;
  /** Called before each decode step with the cache, e.g. for decode-time eviction. */
  beforeDecodeStep?: (cache: S, generated: number) => void | Promise<void>;
  /** Called with each new token id (forced ones included). */
  onToken?: (id: number) => void;
  /**
   * The logits of the position `cache` ends at, when the prompt is already in it: generation
   * starts from them and `promptIds` must be empty.
   */
  startLogits?: Float32Array;
  /** Sample instead of taking the argmax. */
  sampling?: Sampling;
  /** Cap the thinking of a reasoning model (see {@linkcode ThinkingBudget}). */
  thinkingBudget?: ThinkingBudget;
}

/**
 * Fast KVzip's forced answer (math runs): once `maxThinkingTokens` tokens are generated and
 * none of them is `endThinkingId` (`</think>`), `forcedIds` are fed as if generated ("…I have to
 * give the solution based on the thinking directly now.\n</think>.\n\n") and generation goes
 * on to `maxNewTokens`, which counts them.
 */
export interface ThinkingBudget {
  maxThinkingTokens: number;
  endThinkingId: number;
  forcedIds: Int32Array;
}

/** What {@linkcode generate} produced. */
export interface GenerateResult {
  /** Generated ids, including the eos id when one ended generation. */
  tokens: number[];
  /** Decoded completion (cut before a stop string), when a decoder was given. */
  text: string | null;
  stopReason: StopReason;
  /** Whether the thinking budget ran out and the forced ids were fed. */
  forcedAnswer: boolean;
  prefillMs: number;
  /** Mean wall time per decode step (0 when nothing was decoded). */
  decodeMsPerToken: number;
}

/**
 * Decoding of `promptIds` continued from whatever `cache` holds: greedy unless
 * `options.sampling` is given.
 *
 * @example
 * ```ts
 * const result = await generate(model, model.createCache(), ids, { maxNewTokens: 32 });
 * ```
 */
export async function generate<S extends KvStore = CpuKvStore>(
  model: Model<S>,
  cache: S,
  promptIds: Int32Array,
  options: GenerateOptions<S>,
): Promise<GenerateResult> {
  const eos = new Set(options.eosTokenIds ?? model.config.eosTokenIds);
  const stops = options.stopStrings ?? [];
  if (stops.length > 0 && options.decode === undefined) {
    throw new Error("generate: stopStrings need a decode function");
  }
  const t0 = performance.now();
  if ((promptIds.length === 0) === (options.startLogits === undefined)) {
    throw new Error("generate: give prompt ids, or no ids and the logits the cache ends with");
  }
  let logits = options.startLogits ?? await model.prefill(promptIds, cache, {
    chunkSize: options.chunkSize,
    taps: options.prefillTaps,
  });
  const prefillMs = performance.now() - t0;
  const choose = tokenChooser(options.sampling);
  const budget = options.thinkingBudget;
  let forcedAnswer = false;
  let thinkingEnded = false;
  const tokens: number[] = [];
  let stopReason: StopReason = "max-new-tokens";
  let text: string | null = null;
  let decodeMs = 0;
  let steps = 0;
  while (tokens.length < options.maxNewTokens) {
    const next = choose(logits);
    tokens.push(next);
    options.onToken?.(next);
    if (next === budget?.endThinkingId) thinkingEnded = true;
    if (eos.has(next)) {
      stopReason = "eos";
      break;
    }
    if (stops.length > 0) {
      const sofar = options.decode!(tokens);
      const cut = firstStop(sofar, stops);
      if (cut !== -1) {
        text = sofar.slice(0, cut);
        stopReason = "stop-string";
        break;
      }
    }
    // The ids to feed next: the token just chosen, or it and the forced answer.
    let feed = Int32Array.of(next);
    if (
      budget !== undefined && !forcedAnswer && !thinkingEnded &&
      tokens.length >= budget.maxThinkingTokens
    ) {
      forcedAnswer = true;
      const room = options.maxNewTokens - tokens.length;
      const forced = budget.forcedIds.subarray(0, room);
      for (const id of forced) {
        tokens.push(id);
        options.onToken?.(id);
      }
      feed = Int32Array.of(next, ...forced);
    }
    if (tokens.length >= options.maxNewTokens) break;
    if (cache.nextPosition + feed.length > model.config.maxPositionEmbeddings) {
      // The tokens just chosen have no positions left to be fed at: keep what was generated.
      stopReason = "max-positions";
      break;
    }
    await options.beforeDecodeStep?.(cache, tokens.length);
    const t = performance.now();
    logits = feed.length === 1
      ? await model.forward(feed, cache, { logits: "last", taps: options.decodeTaps })
      : await model.prefill(feed, cache, { taps: options.decodeTaps });
    decodeMs += performance.now() - t;
    steps++;
  }
  if (text === null && options.decode) {
    text = options.decode(stopReason === "eos" ? tokens.slice(0, -1) : tokens);
  }
  return {
    tokens,
    text,
    stopReason,
    forcedAnswer,
    prefillMs,
    decodeMsPerToken: steps > 0 ? decodeMs / steps : 0,
  };
}

function firstStop(text: string, stops: readonly string[]): number {
  let cut = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i !== -1 && (cut === -1 || i < cut)) cut = i;
  }
  return cut;
}
