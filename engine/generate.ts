/**
 * Greedy generation over a KV store: prefill the prompt (chunked), then decode one token at a
 * time until an end-of-sequence id, a stop string or the token limit.
 *
 * @module
 */

import type { CpuKvStore, KvStore } from "../kernels/kv_store.ts";
import type { ForwardTaps, Model } from "./model.ts";

/** Why generation ended. */
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
  /** Called with each new token id. */
  onToken?: (id: number) => void;
}

/** What {@linkcode generate} produced. */
export interface GenerateResult {
  /** Generated ids, including the eos id when one ended generation. */
  tokens: number[];
  /** Decoded completion (cut before a stop string), when a decoder was given. */
  text: string | null;
  stopReason: StopReason;
  prefillMs: number;
  /** Mean wall time per decode step (0 when nothing was decoded). */
  decodeMsPerToken: number;
}

/** Index of the largest logit (the first one on ties, as torch.argmax does). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Greedy decoding of `promptIds` continued from whatever `cache` holds.
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
  let logits = await model.prefill(promptIds, cache, {
    chunkSize: options.chunkSize,
    taps: options.prefillTaps,
  });
  const prefillMs = performance.now() - t0;
  const tokens: number[] = [];
  let stopReason: StopReason = "max-new-tokens";
  let text: string | null = null;
  let decodeMs = 0;
  let steps = 0;
  while (tokens.length < options.maxNewTokens) {
    const next = argmax(logits);
    tokens.push(next);
    options.onToken?.(next);
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
    if (tokens.length === options.maxNewTokens) break;
    if (cache.nextPosition >= model.config.maxPositionEmbeddings) {
      // The token just chosen has no position left to be fed at: keep what was generated.
      stopReason = "max-positions";
      break;
    }
    await options.beforeDecodeStep?.(cache, tokens.length);
    const t = performance.now();
    logits = await model.forward(Int32Array.of(next), cache, {
      logits: "last",
      taps: options.decodeTaps,
    });
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
