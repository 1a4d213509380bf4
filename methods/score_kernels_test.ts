/** The shared numeric helpers: pooling as torch computes it, the query window, the hash. */

import { assert, assertClose, assertEquals } from "../tests/assert.ts";
import { EntryScores } from "./entry_scores.ts";
import { hashUniform, pool1d, QueryWindow } from "./score_kernels.ts";
import { handConfig, positions, storeFor } from "./testing.ts";

Deno.test("pool1d: max-pool ignores padding, avg-pool counts padded zeros (torch defaults)", () => {
  const x = [1, 5, 2, 0, 3];
  assertEquals([...pool1d(x, 3, "max")], [5, 5, 5, 3, 3]);
  assertClose(pool1d(x, 3, "avg"), [6 / 3, 8 / 3, 7 / 3, 5 / 3, 3 / 3], 1e-7);
  assertEquals([...pool1d(x, 7, "max")], [5, 5, 5, 5, 5]);
  assertEquals([...pool1d(x, 1, "avg")], x);
});

Deno.test("QueryWindow keeps the last rows across pushes of any size", () => {
  const w = new QueryWindow(3, 2);
  w.push(Float32Array.of(1, 1, 2, 2), Int32Array.of(0, 1));
  assertEquals([...w.rows().positions], [0, 1]);
  w.push(Float32Array.of(3, 3, 4, 4), Int32Array.of(2, 3));
  assertEquals([...w.rows().positions], [1, 2, 3]);
  assertEquals([...w.rows().queries], [2, 2, 3, 3, 4, 4]);
  w.push(Float32Array.of(5, 5, 6, 6, 7, 7, 8, 8), Int32Array.of(4, 5, 6, 7));
  assertEquals([...w.rows().positions], [5, 6, 7]);
  w.push(Float32Array.of(9, 9), Int32Array.of(8));
  assertEquals([...w.rows().queries], [7, 7, 8, 8, 9, 9]);
});

Deno.test("hashUniform is deterministic, in [0, 1), and spread", () => {
  const xs = Array.from({ length: 1000 }, (_, i) => hashUniform(1, 2, i));
  assertEquals(hashUniform(1, 2, 3), hashUniform(1, 2, 3));
  assert(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  assert(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  assert(new Set(xs).size === xs.length, "no collisions on 1000 keys");
});

Deno.test("EntryScores: put, add, out-of-order merges and alignment with an evicted store", () => {
  const config = handConfig({ layers: 1, kvHeads: 1, group: 1, headDim: 1 });
  const cache = storeFor(config);
  cache.append(0, new Float32Array(6), new Float32Array(6), positions(0, 6));
  const s = new EntryScores(1, 1);
  s.put(0, 0, Int32Array.of(0, 1, 2), [1, 2, 3]);
  s.add(0, 0, Int32Array.of(1, 2, 3, 4), [10, 10, 10, 10]);
  s.put(0, 0, Int32Array.of(0, 5), [7, 8]);
  assertEquals(s.get(0, 0, 1), 12);
  cache.evict(0, [Int32Array.of(0, 2, 3, 5)]);
  const grid = s.aligned(cache);
  assertEquals([...grid[0][0]], [7, 13, 10, 8]);
  assertEquals(s.get(0, 0, 1), undefined, "evicted positions are dropped from the state");
  cache.append(0, new Float32Array(1), new Float32Array(1), Int32Array.of(6));
  assert(Number.isNaN(s.aligned(cache)[0][0][4]), "unscored entries are NaN");
});

Deno.test("EntryScores: max keeps the larger value, in order or not, held or new", () => {
  const s = new EntryScores(1, 1);
  s.max(0, 0, Int32Array.of(2, 3, 4), [0.5, 0.1, 0.2]);
  s.max(0, 0, Int32Array.of(2, 3, 4, 5), [0.4, 0.3, 0.2, 0.9]); // held positions a prefix
  s.max(0, 0, Int32Array.of(1, 3), [0.7, 0.2]); // out of order: a merge
  assertEquals([1, 2, 3, 4, 5].map((p) => s.get(0, 0, p)), [0.7, 0.5, 0.3, 0.2, 0.9]);
});

Deno.test("EntryScores: accumulating over a growing store (held positions a prefix) adds in place", () => {
  const s = new EntryScores(1, 1);
  s.add(0, 0, Int32Array.of(0, 1, 2), [1, 1, 1]);
  s.add(0, 0, Int32Array.of(0, 1, 2, 3), [1, 2, 3, 4]);
  s.add(0, 0, Int32Array.of(0, 1, 2, 3, 4), [1, 1, 1, 1, 1]);
  assertEquals([0, 1, 2, 3, 4].map((p) => s.get(0, 0, p)), [3, 4, 5, 5, 1]);
  s.put(0, 0, Int32Array.of(0, 1, 2, 3, 4, 5), [0, 0, 0, 0, 0, 9]);
  assertEquals([0, 4, 5].map((p) => s.get(0, 0, p)), [0, 0, 9]);
});
