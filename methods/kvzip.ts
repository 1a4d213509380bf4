/**
 * `kvzip`: scores each context entry by how much the model attends to it while reconstructing
 * the context ("Repeat the previous context exactly.") on top of the full cache.
 *
 * Paper: Kim et al., "KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction",
 * https://arxiv.org/abs/2505.23416 (spec §2.1, the official scoring; §10 for kvpress's).
 *
 * Parameters:
 * - `chunk` (2000): context tokens reconstructed per pass (kvpress: 2048).
 * - `firstPrompt` ("\n\nRepeat the previous context exactly."): Q₁.
 * - `nextPrompt` ("\n\nRepeat the part of the previous context exactly, starting with "):
 *   Q_i for i > 1, followed by the last `overlap` tokens of the previous chunk (kvpress: no
 *   trailing space).
 * - `overlap` (8): tokens of the previous chunk appended to Q_i.
 * - `opener` ("auto"): the assistant-turn opener A; "auto" renders the chat template around a
 *   user turn with thinking off and takes what follows the message (Qwen:
 *   "<|im_end|>\n<|im_start|>assistant\n", Qwen3 adds the empty think block, spec §1.6); "\n\n"
 *   when the tokenizer has no template. Gate-training targets use the same A.
 * - No lagging window in sweeps: `eval.py` prunes once after the full prefill (spec §5).
 *
 * After a full prefill, for each chunk C_i the pass R_i = Q_i ++ A ++ C_i runs on top of the
 * cache (mark, forward, restore: the cache is left as it was), in forwards of the phase's
 * prefill chunk (`forwardChunk`; the max below is taken over all of them). In every global
 * layer its post-RoPE queries attend, in a scratch store of the same executor, over the
 * restricted key set prefix ++ C_i ++ R_i (causal); score[l,h,t] = max over R_i's queries and
 * the G heads of the group of that softmax (the store's fused `columnMax` statistic with GQA
 * max), t ∈ C_i. The softmax runs in f32 (the official runs in bf16) with the model's attention
 * scale. Scores are ratio-independent and computed once. Default policy: global (spec §3.4
 * `pair`). On the GPU backend the scratch stores live on the device too; each layer's
 * restricted entries are read back and uploaded again (`cache.readEntries`), once per forward
 * of a pass.
 *
 * @module
 */

import { z } from "zod";
import { InputError } from "../errors.ts";
import type { LayerTap, Model } from "../engine/model.ts";
import type { TextTokenizer } from "../engine/tokenizer.ts";
import type { KvStore } from "../kernels/kv_store.ts";
import type { ModelConfig } from "../engine/types.ts";
import { EntryScores } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import type { MethodContext, MethodDefinition } from "./types.ts";

const params = z.object({
  chunk: z.number().int().positive().default(2000).describe(
    "context tokens per reconstruction pass",
  ),
  firstPrompt: z.string().default("\n\nRepeat the previous context exactly.").describe("Q_1"),
  nextPrompt: z.string().default(
    "\n\nRepeat the part of the previous context exactly, starting with ",
  ).describe("Q_i, followed by the previous chunk's last tokens"),
  overlap: z.number().int().min(0).default(8).describe("previous-chunk tokens appended to Q_i"),
  opener: z.string().default("auto").describe(
    'assistant-turn opener A ("auto": the chat template\'s, thinking off; "\\n\\n" without one)',
  ),
}).strict();

/** Parameters of `kvzip`. */
export type KvzipParams = z.infer<typeof params>;

/**
 * A, the assistant-turn opener (spec §2.1): what a chat template puts after a user message,
 * rendered with `enable_thinking: false` so Qwen3's templates close it with the empty think
 * block (spec §1.6); "\n\n" for a tokenizer without a template (the plain prompt's cue). The
 * reconstruction passes of `kvzip` and the gate-training targets both use it, so the gates
 * learn the scores this method computes.
 */
export function assistantOpener(tokenizer: TextTokenizer): string {
  if (!tokenizer.hasChatTemplate) return "\n\n";
  const marker = "\u0001KVZIP\u0001";
  const text = tokenizer.applyChatTemplate([{ role: "user", content: marker }], {
    addGenerationPrompt: true,
    extra: { enable_thinking: false },
  });
  const at = text.indexOf(marker);
  return at === -1 ? "" : text.slice(at + marker.length);
}

/** Token ids of every reconstruction pass: R_i = Q_i ++ A ++ C_i, with C_i's positions. */
export function reconstructionPasses(
  p: KvzipParams,
  ctx: Pick<MethodContext, "ids" | "idsStart" | "contextStart" | "contextEnd" | "tokenizer">,
): { ids: Int32Array; chunkStart: number; chunkEnd: number }[] {
  const tok = ctx.tokenizer;
  if (tok === null) {
    throw new InputError(
      "method kvzip: the model has no tokenizer.json; the repeat prompts need one",
    );
  }
  const encode = (s: string) => tok.encode(s, { addSpecialTokens: false });
  const opener = encode(p.opener === "auto" ? assistantOpener(tok) : p.opener);
  const first = encode(p.firstPrompt);
  const next = encode(p.nextPrompt);
  const passes = [];
  for (let start = ctx.contextStart; start < ctx.contextEnd; start += p.chunk) {
    const end = Math.min(ctx.contextEnd, start + p.chunk);
    const chunk = ctx.ids.subarray(start - ctx.idsStart, end - ctx.idsStart);
    let q: number[];
    if (start === ctx.contextStart) q = first;
    else {
      const from = Math.max(ctx.contextStart, start - p.overlap);
      q = [...next, ...ctx.ids.subarray(from - ctx.idsStart, start - ctx.idsStart)];
    }
    const ids = Int32Array.from([...q, ...opener, ...chunk]);
    passes.push({ ids, chunkStart: start, chunkEnd: end });
  }
  return passes;
}

/**
 * Entries of `layer` at positions < prefixEnd, in [chunkStart, chunkEnd) or ≥ passStart, as
 * head-major [kvHeads, T, d] arrays (every head holds the same positions: the cache is
 * unevicted). One `readEntries` of the layer: views on the CPU, a read-back on the GPU. The
 * picked entries form a few runs of consecutive indices, copied one run at a time.
 */
async function restrictedEntries(
  cache: KvStore,
  layer: number,
  o: ReconstructionRanges,
): Promise<{ keys: Float32Array; values: Float32Array; positions: Int32Array }> {
  const { numKvHeads: H, headDim: d } = cache.shape;
  const segments = await cache.readEntries(
    Array.from({ length: H }, (_, head) => ({ layer, head })),
  );
  const ref = segments[0];
  const runs: [number, number][] = []; // [from, to) index runs of the picked entries
  let picked = 0;
  for (let i = 0; i < ref.length; i++) {
    const p = ref.positions[i];
    if (!(p < o.prefixEnd || (p >= o.chunkStart && p < o.chunkEnd) || p >= o.passStart)) continue;
    const last = runs.at(-1);
    if (last !== undefined && last[1] === i) last[1] = i + 1;
    else runs.push([i, i + 1]);
    picked++;
  }
  const keys = new Float32Array(H * picked * d);
  const values = new Float32Array(H * picked * d);
  for (let h = 0; h < H; h++) {
    const seg = segments[h];
    if (
      seg.length !== ref.length || seg.positions[seg.length - 1] !== ref.positions[ref.length - 1]
    ) {
      throw new Error(`kvzip: layer ${layer} heads hold different entries; score before evicting`);
    }
    let t = h * picked * d;
    for (const [from, to] of runs) {
      keys.set(seg.keys.subarray(from * d, to * d), t);
      values.set(seg.values.subarray(from * d, to * d), t);
      t += (to - from) * d;
    }
  }
  const positions = new Int32Array(picked);
  let t = 0;
  for (const [from, to] of runs) {
    positions.set(ref.positions.subarray(from, to), t);
    t += to - from;
  }
  return { keys, values, positions };
}

/** Position ranges of one reconstruction pass (spec §2.1). */
export interface ReconstructionRanges {
  /** End of the prompt prefix P (its entries are always in the key set). */
  prefixEnd: number;
  /** The chunk C_i being reconstructed: [chunkStart, chunkEnd). */
  chunkStart: number;
  chunkEnd: number;
  /** First position of the pass R_i (its entries so far are in the key set, causally). */
  passStart: number;
}

/**
 * One layer of one forward of a reconstruction pass: the tap's post-RoPE queries attend, in
 * `scratch` (a fresh store of the same backend whose `tap.layer` is still empty), over the
 * entries of `cache` in P ∪ C_i ∪ R_i (causal by position), and every entry of C_i gets the max
 * over the queries and the group's heads of its probability (the fused `columnMax` with GQA
 * max).
 */
async function reconstructionColumnMax(
  cache: KvStore,
  scratch: KvStore,
  config: ModelConfig,
  tap: { layer: number; queries: Float32Array; positions: Int32Array },
  ranges: ReconstructionRanges,
): Promise<ColumnMax> {
  const e = await restrictedEntries(cache, tap.layer, ranges);
  scratch.append(tap.layer, e.keys, e.values, e.positions, "head");
  const { stats } = await scratch.attend(tap.layer, tap.queries, tap.positions, {
    scale: config.attnScale,
    softcap: config.attnLogitSoftcap,
    stats: { columnMax: true, gqa: "max" },
  });
  let from = e.positions.findIndex((x) => x >= ranges.chunkStart);
  if (from < 0) from = e.positions.length;
  let to = from;
  while (to < e.positions.length && e.positions[to] < ranges.chunkEnd) to++;
  return {
    positions: e.positions.subarray(from, to),
    perHead: stats!.map((s) => s.columnMax!.subarray(from, to)),
  };
}

/** Per-head column maxima of the entries of C_i: `positions` and, per KV head, their values. */
export interface ColumnMax {
  positions: Int32Array;
  perHead: Float32Array[];
}

/**
 * Run reconstruction pass R_i (`ids`) on top of `cache` and undo it (mark, forwards, restore),
 * in forwards of `forwardChunk` tokens, each over a fresh scratch store released after it, so
 * that no forward holds more than `forwardChunk` × n probabilities per head. For every global
 * layer of every forward, `onColumnMax` receives that forward's column maxima of C_i; an entry's
 * score is the max over the pass's forwards. Backend-neutral: used by the `kvzip` method and by
 * gate training's targets.
 */
export async function runReconstructionPass(
  model: Model<KvStore>,
  cache: KvStore,
  pass: { ids: Int32Array; forwardChunk: number; ranges: Omit<ReconstructionRanges, "passStart"> },
  onColumnMax: (layer: number, chunk: ColumnMax) => void,
): Promise<void> {
  const mark = cache.mark();
  const ranges = { ...pass.ranges, passStart: cache.nextPosition };
  try {
    for (let from = 0; from < pass.ids.length; from += pass.forwardChunk) {
      const scratch = model.createCache();
      const onLayer = async (tap: LayerTap): Promise<void> => {
        if (cache.shape.slidingWindows[tap.layer] !== null) return;
        onColumnMax(
          tap.layer,
          await reconstructionColumnMax(cache, scratch, model.config, tap, ranges),
        );
      };
      const ids = pass.ids.subarray(from, from + pass.forwardChunk);
      try {
        await model.forward(ids, cache, { logits: "none", taps: { onLayer } });
      } finally {
        scratch.release();
      }
    }
  } finally {
    cache.restore(mark);
  }
}

/** The `kvzip` method. */
export const kvzip: MethodDefinition<KvzipParams> = {
  id: "kvzip",
  title: "KVzip",
  paper: {
    title: "KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction",
    url: "https://arxiv.org/abs/2505.23416",
  },
  summary: "Keeps the entries the model attends to most while reconstructing the context.",
  params,
  signals: ["attention-stats", "queries", "keys", "values"],
  phases: ["prefill"],
  ratioIndependent: true,
  // eval.py prunes once after the full prefill, with no local window (spec §5).
  lagWindow: false,
  /** The longest reconstruction pass R_i = Q_i ++ A ++ C_i, run on top of the prompt. */
  extraPositions(p, { contextTokens, tokenizer }) {
    if (contextTokens === 0 || tokenizer === null) return 0;
    const passes = reconstructionPasses(p, {
      ids: new Int32Array(contextTokens),
      idsStart: 0,
      contextStart: 0,
      contextEnd: contextTokens,
      tokenizer,
    });
    return Math.max(...passes.map((pass) => pass.ids.length));
  },
  policy: { policy: "global" },
  createScorer(p, ctx) {
    const { numLayers, numKvHeads } = ctx.cache.shape;
    const stored = new EntryScores(numLayers, numKvHeads);
    let done = false;
    const run = async (): Promise<void> => {
      for (const pass of reconstructionPasses(p, ctx)) {
        const ranges = {
          prefixEnd: ctx.contextStart,
          chunkStart: pass.chunkStart,
          chunkEnd: pass.chunkEnd,
        };
        await runReconstructionPass(
          ctx.model,
          ctx.cache,
          { ids: pass.ids, forwardChunk: ctx.forwardChunk, ranges },
          (layer, chunk) => {
            for (let h = 0; h < numKvHeads; h++) {
              stored.max(layer, h, chunk.positions, chunk.perHead[h]);
            }
          },
        );
      }
      done = true;
    };
    return {
      async score() {
        if (!done) await run();
        return stored.aligned(ctx.cache);
      },
    };
  },
};

registerMethod(kvzip);
