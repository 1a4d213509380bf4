import { assert, assertEquals } from "../tests/assert.ts";
import { KvStoragePool } from "./kv_pool.ts";
import { CpuKvStore, growthHeadroom, type KvStoreShape } from "./kv_store.ts";
import { OrtAttention } from "./attention_ort.ts";
import { seededRandom } from "./random.ts";

const shape: KvStoreShape = { numLayers: 2, numKvHeads: 2, group: 2, headDim: 4 };
const perEntry = 4 * 8 + 4;

function randn(rand: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

/** Append `tokens` random entries at positions start… to every layer of `kv`. */
function fill(kv: CpuKvStore, rand: () => number, start: number, tokens: number): void {
  const positions = Int32Array.from({ length: tokens }, (_, i) => start + i);
  for (let l = 0; l < shape.numLayers; l++) {
    kv.append(l, randn(rand, tokens * 8), randn(rand, tokens * 8), positions);
  }
}

Deno.test("a released store's storage is what the next store of the pool grows into", () => {
  const rand = seededRandom(1);
  const pool = new KvStoragePool();
  const first = new CpuKvStore(shape, { pool });
  first.reserve(300);
  fill(first, rand, 0, 300);
  const buffers = new Set(
    [0, 1].flatMap((l) => [0, 1].map((h) => first.segment(l, h).keys.buffer)),
  );
  first.release();
  assertEquals(first.bytesHeld(), 0, "a released store holds nothing");
  assertEquals(first.nextPosition, 0);
  assertEquals(pool.bytes, 4 * 300 * perEntry);

  // 290 entries fit within the slack of the 300 released: the store reuses them, and holds
  // (and reports) exactly the 290 it asked for.
  const second = new CpuKvStore(shape, { pool });
  second.reserve(290);
  assertEquals(second.bytesHeld(), 4 * 290 * perEntry);
  for (let l = 0; l < 2; l++) {
    for (let h = 0; h < 2; h++) {
      assert(buffers.has(second.segment(l, h).keys.buffer), `layer ${l} head ${h} reused`);
    }
  }
  assertEquals(pool.bytes, 0);
  // The released store is empty but still usable, with fresh storage.
  fill(first, rand, 0, 10);
  assertEquals(first.bytesUsed(), 4 * 10 * perEntry);
});

Deno.test("the pool gives only storage within the slack, and keeps one store's worth", () => {
  const pool = new KvStoragePool();
  const storage = (n: number, d = 4) => ({
    keys: new Float32Array(n * d),
    values: new Float32Array(n * d),
    positions: new Int32Array(n),
  });
  pool.give([storage(1000), storage(2000), storage(0)]);
  assertEquals(pool.take(1001, 4), null, "too small");
  assertEquals(pool.take(1000 - growthHeadroom(1000) - 1, 4), null, "too large to hand out");
  assertEquals(pool.take(1000, 8), null, "another head size");
  const taken = pool.take(1900, 4)!;
  assertEquals(taken.positions.length, 1900, "a view of exactly the capacity asked");
  assertEquals(taken.keys.buffer.byteLength, 2000 * 16, "on the pooled buffer");
  assertEquals(pool.bytes, 1000 * 36);
  // Releases stack up to the largest release yet (3000 entries); beyond it the oldest leave.
  pool.give([storage(1500)]);
  assertEquals(pool.bytes, 2500 * 36);
  const newest = storage(1000);
  pool.give([newest]);
  assertEquals(pool.bytes, 2500 * 36, "the first release's 1000 entries left");
  assertEquals(pool.take(1000, 4)!.keys.buffer, newest.keys.buffer);
  assertEquals(pool.take(1000, 4), null, "no other storage of 1000 entries is left");
  assertEquals(pool.take(1400, 4)!.positions.length, 1400);
  pool.drain();
  assertEquals(pool.bytes, 0);
});

Deno.test("attention over reused storage equals attention over fresh storage", async () => {
  const executor = new OrtAttention();
  const pool = new KvStoragePool();
  const rand = seededRandom(9);
  // Fill the pool with storage holding other entries at other positions.
  const previous = new CpuKvStore(shape, { executor, pool });
  previous.reserve(64);
  fill(previous, rand, 100, 64);
  previous.release();

  const fresh = new CpuKvStore(shape, { executor });
  const reused = new CpuKvStore(shape, { executor, pool });
  const positions = Int32Array.from({ length: 60 }, (_, i) => i);
  const q = randn(rand, 60 * 4 * 4);
  for (const kv of [fresh, reused]) kv.reserve(60);
  assertEquals(pool.bytes, 0, "the reused store took the pooled storage");
  for (let l = 0; l < 2; l++) {
    const k = randn(rand, 60 * 8);
    const v = randn(rand, 60 * 8);
    for (const kv of [fresh, reused]) kv.append(l, k, v, positions);
  }
  for (let l = 0; l < 2; l++) {
    const options = { scale: 0.5, stats: { columnSum: true, lastRow: true } };
    const a = await fresh.attend(l, q, positions, options);
    const b = await reused.attend(l, q, positions, options);
    assertEquals(b.output, a.output, `layer ${l}: output`);
    assertEquals(b.stats, a.stats, `layer ${l}: statistics`);
  }
});
