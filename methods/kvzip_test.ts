/**
 * KVzip (spec §2.1): the reconstruction inputs token by token, and the scores against a plain
 * restricted softmax (prefix ++ C_i ++ R_i keys, causal) maxed over every query of R_i and the
 * group's heads, on a tiny Qwen3 model; the cache is left as it was.
 */

import { assert, assertClose, assertEquals } from "../tests/assert.ts";
import { Model } from "../engine/model.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import { assistantOpener, kvzip, reconstructionPasses } from "./kvzip.ts";
import { parseMethodParams } from "./registry.ts";
import { dot, softmax, withTinyModel } from "./testing.ts";
import type { MethodContext, ScoreGrid } from "./types.ts";

Deno.test("kvzip: Q_i ++ A ++ C_i with the spec's prompts and the previous chunk's last 8 tokens", async () => {
  await withTinyModel({ arch: "qwen3", seed: 21 }, async (dir) => {
    const model = await Model.load(dir, { attention: referenceAttention, threads: 1 });
    const tok = model.tokenizer();
    assertEquals(assistantOpener(tok), "<|im_end|>\n<|im_start|>assistant\n");
    const ids = Int32Array.from({ length: 27 }, (_, i) => 40 + i); // prefix 3, context 24
    const p = parseMethodParams(kvzip, { chunk: 10 });
    const passes = reconstructionPasses(p, {
      ids,
      idsStart: 0,
      contextStart: 3,
      contextEnd: 27,
      tokenizer: tok,
    });
    const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
    const opener = enc("<|im_end|>\n<|im_start|>assistant\n");
    assertEquals(passes.map((x) => [x.chunkStart, x.chunkEnd]), [[3, 13], [13, 23], [23, 27]]);
    assertEquals([...passes[0].ids], [
      ...enc("\n\nRepeat the previous context exactly."),
      ...opener,
      ...ids.subarray(3, 13),
    ]);
    const next = enc("\n\nRepeat the part of the previous context exactly, starting with ");
    assertEquals([...passes[1].ids], [
      ...next,
      ...ids.subarray(5, 13),
      ...opener,
      ...ids.subarray(13, 23),
    ]);
    assertEquals([...passes[2].ids], [
      ...next,
      ...ids.subarray(15, 23),
      ...opener,
      ...ids.subarray(23, 27),
    ]);
  });
});

Deno.test("kvzip: max over reconstruction queries and group heads of the restricted softmax", async () => {
  await withTinyModel({ arch: "qwen3", seed: 22 }, async (dir) => {
    const model = await Model.load(dir, { attention: referenceAttention, threads: 1 });
    const c = model.config;
    const ids = Int32Array.from({ length: 29 }, (_, i) => (i * 31 + 7) % 250); // prefix 4, context 25
    const cache = model.createCache();
    await model.prefill(ids, cache);
    const p = parseMethodParams(kvzip, { chunk: 10 });
    const before = cache.clone();
    // Passes of 30-odd tokens in one forward, and in forwards of 7 (the max over them).
    const scoresBy = new Map<number, ScoreGrid>();
    for (const forwardChunk of [512, 7]) {
      const ctx: MethodContext = {
        model,
        config: c,
        cache,
        contextStart: 4,
        contextEnd: 29,
        ids,
        idsStart: 0,
        tokenizer: model.tokenizer(),
        seed: 0,
        phase: "prefill",
        window: 0,
        forwardChunk,
      };
      scoresBy.set(
        forwardChunk,
        await kvzip.createScorer(p, ctx).score({
          observed: { start: 0, end: 29 },
          range: { start: 4, end: 29 },
          budget: { keptRatio: 0.5 },
          keptPerHead: 12,
        }),
      );
      // The cache is as it was: same entries, same next logits.
      assertEquals(cache.nextPosition, 29);
      for (let l = 0; l < c.numLayers; l++) assertEquals(cache.lengths(l), before.lengths(l));
    }
    const probe = Int32Array.of(5, 6);
    assertEquals(
      await model.forward(probe, cache, { logits: "all" }),
      await model.forward(probe, before, { logits: "all" }),
    );
    const ctx = { ids, idsStart: 0, contextStart: 4, contextEnd: 29, tokenizer: model.tokenizer() };

    // Plain: rerun each pass on a fresh prefill and compute the restricted softmax by loops.
    const G = c.numHeads / c.numKvHeads;
    const d = c.headDim;
    for (const pass of reconstructionPasses(p, ctx)) {
      const work = model.createCache();
      await model.prefill(ids, work);
      const queries: Float32Array[] = [];
      await model.forward(pass.ids, work, {
        logits: "none",
        taps: { onLayer: (tap) => void (queries[tap.layer] = tap.queries) },
      });
      const T = pass.ids.length;
      for (let l = 0; l < c.numLayers; l++) {
        for (let h = 0; h < c.numKvHeads; h++) {
          const seg = work.segment(l, h);
          const allowed: number[] = [];
          for (let i = 0; i < seg.length; i++) {
            const pos = seg.positions[i];
            if (pos < 4 || (pos >= pass.chunkStart && pos < pass.chunkEnd) || pos >= 29) {
              allowed.push(i);
            }
          }
          const best = new Array(pass.chunkEnd - pass.chunkStart).fill(0);
          for (let t = 0; t < T; t++) {
            for (let g = 0; g < G; g++) {
              const logits = allowed.map((i) =>
                seg.positions[i] > 29 + t
                  ? -Infinity
                  : dot(queries[l], (t * c.numHeads + h * G + g) * d, seg.keys, i * d, d) *
                    c.attnScale
              );
              const probs = softmax(logits);
              allowed.forEach((i, j) => {
                const pos = seg.positions[i];
                if (pos >= pass.chunkStart && pos < pass.chunkEnd) {
                  best[pos - pass.chunkStart] = Math.max(best[pos - pass.chunkStart], probs[j]);
                }
              });
            }
          }
          for (const scores of scoresBy.values()) {
            assertClose(scores[l][h].subarray(pass.chunkStart, pass.chunkEnd), best, 1e-5);
            assert(Number.isNaN(scores[l][h][0]), "the prefix is not scored");
          }
        }
      }
    }
  });
});
