/** TOVA: the last query's attention (fused lastRow), averaged over the layer's heads. */

import { assertClose } from "../tests/assert.ts";
import { tova } from "./tova.ts";
import { parseMethodParams } from "./registry.ts";
import {
  dot,
  feedLayer,
  handConfig,
  handContext,
  positions,
  randomArray,
  seeded,
  softmax,
  storeFor,
} from "./testing.ts";

const D = 4;
const G = 2;
const H = 2;
const config = handConfig({ layers: 1, kvHeads: H, group: G, headDim: D });
const scale = 1 / Math.sqrt(D);

Deno.test("tova: the last row averaged over every head of the layer; the last token takes the max", async () => {
  const rand = seeded(5);
  const T = 6;
  const q = randomArray(rand, T * H * G * D);
  const k = randomArray(rand, T * H * D);
  const rowOf = (h: number): number[] => {
    const out = new Array(T).fill(0);
    for (let g = 0; g < G; g++) {
      const logits = Array.from(
        { length: T },
        (_, j) => dot(q, ((T - 1) * H * G + h * G + g) * D, k, (j * H + h) * D, D) * scale,
      );
      softmax(logits).forEach((x, j) => (out[j] += x / G));
    }
    return out;
  };
  for (const heads of ["layer", "kv-head"] as const) {
    const cache = storeFor(config);
    const scorer = tova.createScorer(
      parseMethodParams(tova, { heads }),
      handContext(cache, config),
    );
    await feedLayer(scorer, cache, {
      layer: 0,
      positions: positions(0, T),
      queries: q,
      keys: k,
      values: k,
      scale,
    });
    const s = await scorer.score({
      observed: { start: 0, end: T },
      range: { start: 0, end: T },
      budget: { keptRatio: 0.5 },
      keptPerHead: 3,
    });
    const rows = [rowOf(0), rowOf(1)];
    for (let h = 0; h < H; h++) {
      const want = heads === "layer" ? rows[0].map((x, j) => (x + rows[1][j]) / 2) : rows[h];
      want[T - 1] = Math.max(...want.slice(0, T - 1));
      assertClose(s[0][h], want, 1e-6);
    }
  }
});
