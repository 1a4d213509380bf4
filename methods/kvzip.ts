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
 *   user turn and takes what follows the message (Qwen: "<|im_end|>\n<|im_start|>assistant\n");
 *   empty when the tokenizer has no template.
 *
 * After a full prefill, for each chunk C_i the pass R_i = Q_i ++ A ++ C_i runs on top of the
 * cache (mark, forward, restore: the cache is left as it was). In every global layer its
 * post-RoPE queries attend, in a scratch store of the same executor, over the restricted key
 * set prefix ++ C_i ++ R_i (causal); score[l,h,t] = max over R_i's queries and the G heads of
 * the group of that softmax (the store's fused `columnMax` statistic with GQA max), t ∈ C_i.
 * The softmax runs in f32 (the official runs in bf16) with the model's attention scale. Scores
 * are ratio-independent and computed once. Default policy: global (spec §3.4 `pair`). On the
 * GPU backend the scratch stores live on the device too; each layer's restricted entries are
 * read back and uploaded again (`cache.readEntries`), once per pass.
 *
 * @module
 */

import { z } from "zod";
import { InputError } from "../errors.ts";
import type { LayerTap } from "../engine/model.ts";
import type { TextTokenizer } from "../engine/tokenizer.ts";
import type { KvStore } from "../kernels/kv_store.ts";
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
    'assistant-turn opener A ("auto": from the chat template)',
  ),
}).strict();

/** Parameters of `kvzip`. */
export type KvzipParams = z.infer<typeof params>;

/** The assistant-turn opener of a chat template: what follows a user message. */
export function assistantOpener(tokenizer: TextTokenizer): string {
  if (!tokenizer.hasChatTemplate) return "";
  const marker = "\u0001KVZIP\u0001";
  const text = tokenizer.applyChatTemplate([{ role: "user", content: marker }], {
    addGenerationPrompt: true,
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
 * [T, kvHeads, d] arrays (every head holds the same positions: the cache is unevicted). One
 * `readEntries` of the layer: views on the CPU, a read-back on the GPU.
 */
async function restrictedEntries(
  cache: KvStore,
  layer: number,
  o: { prefixEnd: number; chunkStart: number; chunkEnd: number; passStart: number },
): Promise<{ keys: Float32Array; values: Float32Array; positions: Int32Array }> {
  const { numKvHeads: H, headDim: d } = cache.shape;
  const segments = await cache.readEntries(
    Array.from({ length: H }, (_, head) => ({ layer, head })),
  );
  const ref = segments[0];
  const pick: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    const p = ref.positions[i];
    if (p < o.prefixEnd || (p >= o.chunkStart && p < o.chunkEnd) || p >= o.passStart) pick.push(i);
  }
  const keys = new Float32Array(pick.length * H * d);
  const values = new Float32Array(pick.length * H * d);
  for (let h = 0; h < H; h++) {
    const seg = segments[h];
    if (
      seg.length !== ref.length || seg.positions[seg.length - 1] !== ref.positions[ref.length - 1]
    ) {
      throw new Error(`kvzip: layer ${layer} heads hold different entries; score before evicting`);
    }
    pick.forEach((i, t) => {
      keys.set(seg.keys.subarray(i * d, (i + 1) * d), (t * H + h) * d);
      values.set(seg.values.subarray(i * d, (i + 1) * d), (t * H + h) * d);
    });
  }
  return { keys, values, positions: Int32Array.from(pick, (i) => ref.positions[i]) };
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
  policy: { policy: "global" },
  createScorer(p, ctx) {
    const { numLayers, numKvHeads } = ctx.cache.shape;
    const stored = new EntryScores(numLayers, numKvHeads);
    let done = false;
    const run = async (): Promise<void> => {
      const cache = ctx.cache;
      const config = ctx.config;
      for (const pass of reconstructionPasses(p, ctx)) {
        const mark = cache.mark();
        const passStart = cache.nextPosition;
        const scratch = ctx.model.createCache();
        const onLayer = async (tap: LayerTap): Promise<void> => {
          const l = tap.layer;
          if (cache.shape.slidingWindows[l] !== null) return;
          const e = await restrictedEntries(cache, l, {
            prefixEnd: ctx.contextStart,
            chunkStart: pass.chunkStart,
            chunkEnd: pass.chunkEnd,
            passStart,
          });
          scratch.append(l, e.keys, e.values, e.positions);
          const { stats } = await scratch.attend(l, tap.queries, tap.positions, {
            scale: config.attnScale,
            softcap: config.attnLogitSoftcap,
            stats: { columnMax: true, gqa: "max" },
          });
          const from = e.positions.findIndex((x) => x >= pass.chunkStart);
          const to = from + (pass.chunkEnd - pass.chunkStart);
          for (let h = 0; h < numKvHeads; h++) {
            stored.put(
              l,
              h,
              e.positions.subarray(from, to),
              stats![h].columnMax!.subarray(from, to),
            );
          }
        };
        try {
          await ctx.model.forward(pass.ids, cache, { logits: "none", taps: { onLayer } });
        } finally {
          cache.restore(mark);
        }
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
