/**
 * The onnxruntime scoring graphs against plain f64 loops: the window attention (both GQA
 * reductions, sinks, causal masking, rows that see nothing, empty heads), the query moments
 * (batches and single rows merged in any order, large means), the expected-attention scores,
 * and R-KV's key redundancy (every block size of its near-duplicate search). Tolerances are f32
 * ones (the graphs run in f32).
 */

import { assertClose, assertEquals } from "../tests/assert.ts";
import { expectedAttention, keyRedundancy, QueryMoments, windowAttention } from "./score_ort.ts";
import { dot, positions, randomArray, seeded, softmax } from "./testing.ts";

const G = 2;
const D = 8;

Deno.test("windowAttention: per-head windows, sinks first, causal, max-logits and mean-probs", async () => {
  const rand = seeded(21);
  const H = 2;
  const W = 4;
  // Window queries at positions 16..19 for every query head; head 1 keeps only the last 2 rows.
  const queries = randomArray(rand, W * H * G * D);
  const qPos = positions(16, 20);
  const sinkKeys = [randomArray(rand, 2 * D), new Float32Array(0)];
  const sinkPos = [Int32Array.of(0, 1), new Int32Array(0)];
  const keys = [randomArray(rand, 6 * D), randomArray(rand, 5 * D)];
  const keyPos = [positions(14, 20), Int32Array.of(3, 9, 17, 18, 19)];
  const scale = 0.3;
  for (const gqa of ["max-logits", "mean-probs"] as const) {
    const got = await windowAttention(
      [0, 1].map((h) => {
        const from = h === 0 ? 0 : 2;
        return {
          window: {
            queries: queries.subarray(from * H * G * D),
            positions: qPos.subarray(from),
          },
          sinkKeys: sinkKeys[h],
          sinkPositions: sinkPos[h],
          keys: keys[h],
          positions: keyPos[h],
        };
      }),
      { group: G, headDim: D, scale, gqa },
    );
    for (let h = 0; h < H; h++) {
      const rows = h === 0 ? [0, 1, 2, 3] : [2, 3];
      const rowKeys: [Float32Array, number, number][] = [
        ...[...sinkPos[h]].map((p, j) => [sinkKeys[h], j, p] as [Float32Array, number, number]),
        ...[...keyPos[h]].map((p, j) => [keys[h], j, p] as [Float32Array, number, number]),
      ];
      const mean = new Array(rowKeys.length).fill(0);
      const members = gqa === "max-logits" ? [[0, 1]] : [[0], [1]];
      for (const t of rows) {
        for (const gs of members) {
          const logits = rowKeys.map(([k, j, p]) =>
            p > qPos[t] ? -Infinity : Math.max(
              ...gs.map((g) => dot(queries, (t * H * G + h * G + g) * D, k, j * D, D)),
            ) * scale
          );
          softmax(logits).forEach((x, j) => (mean[j] += x / (rows.length * members.length)));
        }
      }
      assertClose(got[h], mean, 2e-6);
    }
  }
});

Deno.test("windowAttention: rows that see no key add nothing; empty heads give empty rows", async () => {
  const rand = seeded(22);
  const queries = randomArray(rand, 2 * G * D);
  const keys = randomArray(rand, 2 * D);
  const [early, empty] = await windowAttention([
    {
      // The first query (position 4) sees neither key (positions 5, 6).
      window: { queries, positions: Int32Array.of(4, 6) },
      sinkKeys: new Float32Array(0),
      sinkPositions: new Int32Array(0),
      keys,
      positions: Int32Array.of(5, 6),
    },
    {
      window: { queries, positions: Int32Array.of(4, 6) },
      sinkKeys: new Float32Array(0),
      sinkPositions: new Int32Array(0),
      keys: new Float32Array(0),
      positions: new Int32Array(0),
    },
  ], { group: 1, headDim: D, scale: 1, gqa: "max-logits" });
  // Query head 0 of KV head 0 only (group 1): the second query sees both keys.
  const p = softmax([dot(queries, 2 * D, keys, 0, D), dot(queries, 2 * D, keys, D, D)]);
  assertClose(early, [p[0] / 2, p[1] / 2], 2e-6);
  assertEquals(empty.length, 0);
});

Deno.test("QueryMoments: batches and rows merge to the exact mean and scatter, large means included", async () => {
  const rand = seeded(23);
  const heads = 3;
  const rows = 37;
  const x = randomArray(rand, rows * heads * D);
  // An offset far above the spread: the naive Σxxᵀ − Nμμᵀ would lose digits in f32.
  for (let i = 0; i < x.length; i++) x[i] += i % D === 0 ? 300 : 0;
  const m = new QueryMoments(heads, D);
  await m.addBatch(x.subarray(0, 20 * heads * D), 20);
  m.addRow(x.subarray(20 * heads * D, 21 * heads * D));
  await m.addBatch(x.subarray(21 * heads * D), rows - 21);
  assertEquals(m.count, rows);
  for (let h = 0; h < heads; h++) {
    const at = (t: number, a: number) => x[(t * heads + h) * D + a];
    const mean = Array.from({ length: D }, (_, a) => {
      let s = 0;
      for (let t = 0; t < rows; t++) s += at(t, a);
      return s / rows;
    });
    const scatter: number[] = [];
    for (let a = 0; a < D; a++) {
      for (let b = 0; b < D; b++) {
        let s = 0;
        for (let t = 0; t < rows; t++) s += (at(t, a) - mean[a]) * (at(t, b) - mean[b]);
        scatter.push(s);
      }
    }
    assertClose(m.mean.subarray(h * D, (h + 1) * D), mean, 1e-6, 1);
    assertClose(m.scatter.subarray(h * D * D, (h + 1) * D * D), scatter, 1e-4, 1e-2);
  }
});

Deno.test("expectedAttention: μk + kᵀΣk, softmax over keys, mean over the group, (p + ε)·‖v‖", async () => {
  const rand = seeded(24);
  const n = 7;
  const keys = randomArray(rand, n * D);
  const values = randomArray(rand, n * D);
  const mu = randomArray(rand, G * D);
  const cov = randomArray(rand, G * D * D);
  for (const [covariance, valueNorm] of [[true, true], [false, false]]) {
    const [got] = await expectedAttention([{ keys, values, mu, cov }], {
      group: G,
      headDim: D,
      covariance,
      valueNorm,
      epsilon: 0.02,
    });
    const probs = new Array(n).fill(0);
    for (let g = 0; g < G; g++) {
      const logits = Array.from({ length: n }, (_, j) => {
        let logit = dot(mu, g * D, keys, j * D, D);
        if (covariance) {
          for (let a = 0; a < D; a++) {
            logit += keys[j * D + a] * dot(cov, (g * D + a) * D, keys, j * D, D);
          }
        }
        return logit;
      });
      softmax(logits).forEach((p, j) => (probs[j] += p / G));
    }
    const want = probs.map((p, j) =>
      (p + 0.02) * (valueNorm ? Math.sqrt(dot(values, j * D, values, j * D, D)) : 1)
    );
    assertClose(got, want, 2e-5);
  }
});

/** R-KV's `cal_similarity` (retain "last") written out over the whole n × n matrix, in f64. */
function plainRedundancy(keys: Float32Array, d: number, threshold: number): number[] {
  const n = keys.length / d;
  const unit = Array.from({ length: n }, (_, i) => {
    const norm = Math.sqrt(dot(keys, i * d, keys, i * d, d)) + 1e-8;
    return Array.from({ length: d }, (_, a) => keys[i * d + a] / norm);
  });
  const sim = unit.map((u, i) => unit.map((v, j) => (i === j ? 0 : dot(u, 0, v, 0, d))));
  for (let i = 0; i < n; i++) {
    let last = 0;
    for (let j = 0; j < n; j++) if (sim[i][j] > threshold) last = j;
    sim[i][last] = 0;
  }
  const mean = Array.from({ length: n }, (_, j) => sim.reduce((a, row) => a + row[j], 0) / n);
  return softmax(mean);
}

Deno.test("keyRedundancy: R-KV's zeroed cosine matrix, column means, softmax, at any block size", async () => {
  const rand = seeded(25);
  const d = 4; // in 4 dimensions many pairs are near-duplicates (cos > 0.5), many are not
  const n = 23;
  const keys = randomArray(rand, n * d);
  keys.set(keys.subarray(3 * d, 4 * d), 17 * d); // an exact repeat
  keys.fill(0, 9 * d, 10 * d); // a zero key: its unit vector is 0
  for (const threshold of [0.5, 0.9, -1]) {
    const want = plainRedundancy(keys, d, threshold);
    // One call, doubling blocks of a few columns, and one similarity per call.
    for (const cells of [undefined, 60, 1]) {
      const [got] = await keyRedundancy([keys], { headDim: d, threshold, cells });
      assertClose(got, want, 1e-6);
    }
  }
  const [one, none] = await keyRedundancy([keys.subarray(0, d), new Float32Array(0)], {
    headDim: d,
    threshold: 0.5,
  });
  assertEquals([...one], [1]);
  assertEquals(none.length, 0);
});
