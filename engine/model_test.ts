/**
 * The forward pass over the KV store, on tiny random models of every family and with both
 * attention executors: chunking does not change logits, evicting nothing changes no bit, real
 * eviction leaves exactly the kept entries, mark/restore isolates queries, the taps deliver
 * what they promise, and bad token ids or contexts are one-line input errors.
 */

import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { type CpuKvStore, referenceAttention } from "../kernels/kv_store.ts";
import { seededRandom } from "../kernels/random.ts";
import { argmax } from "./generate.ts";
import { type LayerTap, Model } from "./model.ts";
import { makeRandomModel, type RandomModelOptions } from "./random_model.ts";

/** Largest tolerated |Δlogit| between mathematically equal computations. */
const TOLERANCE = 1e-5;
/** Tokens in the main sequence: longer than Gemma3's window of 6, odd so chunks are ragged. */
const SEQUENCE = 29;

interface Variant {
  name: string;
  options: RandomModelOptions;
}

const VARIANTS: Variant[] = [
  { name: "llama", options: { arch: "llama", seed: 101 } },
  {
    name: "llama, llama3 rope scaling",
    options: {
      arch: "llama",
      seed: 102,
      ropeScaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 16,
      },
    },
  },
  { name: "qwen2", options: { arch: "qwen2", seed: 103 } },
  { name: "qwen3", options: { arch: "qwen3", seed: 104 } },
  {
    name: "qwen3, yarn rope scaling",
    options: {
      arch: "qwen3",
      seed: 105,
      ropeScaling: { rope_type: "yarn", factor: 4, original_max_position_embeddings: 16 },
    },
  },
  { name: "gemma3", options: { arch: "gemma3", seed: 106 } },
];

const EXECUTORS = ["reference", "onnxruntime"] as const;
type ExecutorName = typeof EXECUTORS[number];

/** Write a tiny model into a fresh temp dir, run `fn`, then remove the dir. */
async function withModel(
  options: RandomModelOptions,
  executor: ExecutorName,
  fn: (model: Model) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_model_test_" });
  try {
    await makeRandomModel(dir, options);
    const model = await Model.load(dir, {
      attention: executor === "onnxruntime" ? new OrtAttention() : referenceAttention,
    });
    await fn(model);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `count` token ids in [0, vocab) from a seeded stream. */
function randomIds(count: number, vocab: number, seed: number): Int32Array {
  const next = seededRandom(seed);
  return Int32Array.from({ length: count }, () => Math.floor(next() * vocab));
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assertEquals(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    // NaN must fail, so compare the negation.
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  const worst = maxAbsDiff(actual, expected);
  assert(worst <= TOLERANCE, `${what}: max |Δlogit| ${worst} exceeds ${TOLERANCE}`);
}

function assertBitIdentical(actual: Float32Array, expected: Float32Array, what: string): void {
  assertEquals(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    assert(a[i] === b[i], `${what}: element ${i} differs (${actual[i]} vs ${expected[i]})`);
  }
}

/** Row `t` of logits [T, vocab]. */
function row(logits: Float32Array, t: number, vocab: number): Float32Array {
  return logits.subarray(t * vocab, (t + 1) * vocab);
}

/** Logits of every position of `ids`, run in chunks of `chunk` tokens on a fresh cache. */
async function chunkedLogits(model: Model, ids: Int32Array, chunk: number): Promise<Float32Array> {
  const cache = model.createCache();
  const parts: Float32Array[] = [];
  for (let start = 0; start < ids.length; start += chunk) {
    parts.push(await model.forward(ids.subarray(start, start + chunk), cache, { logits: "all" }));
  }
  return concat(parts);
}

/** Keep-sets that keep every entry of every KV head of `layer`. */
function keepAll(cache: CpuKvStore, layer: number): Int32Array[] {
  return Array.from(cache.lengths(layer), (n) => Int32Array.from({ length: n }, (_, i) => i));
}

function sum(values: Float32Array): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

for (const variant of VARIANTS) {
  for (const executor of EXECUTORS) {
    Deno.test(`Model.forward: ${variant.name} (${executor} attention)`, async (t) => {
      await withModel(variant.options, executor, async (model) => {
        const c = model.config;
        const V = c.vocabSize;
        const ids = randomIds(SEQUENCE, V, variant.options.seed);
        const full = await model.forward(ids, model.createCache(), { logits: "all" });
        assertEquals(full.length, SEQUENCE * V);
        assert(full.every(Number.isFinite), "logits must be finite");

        await t.step("chunked prefill, one-shot prefill and decode agree", async () => {
          for (const chunk of [1, 5, 7]) {
            assertClose(await chunkedLogits(model, ids, chunk), full, `chunk size ${chunk}`);
          }
          // prefill() returns the last position's logits, whatever the chunking.
          for (const chunkSize of [undefined, 4, 7]) {
            const last = await model.prefill(ids, model.createCache(), { chunkSize });
            assertClose(last, row(full, SEQUENCE - 1, V), `prefill chunk size ${chunkSize}`);
          }
          // After a one-chunk prefill a sliding layer holds what the next query sees (window −
          // 1 entries), not the whole prompt, and the bytes it reports say so.
          const once = model.createCache();
          await model.prefill(ids, once);
          for (let l = 0; l < c.numLayers; l++) {
            const window = c.layers[l].slidingWindow;
            if (window === null) continue;
            for (const n of once.lengths(l)) assertEquals(n, window - 1, `sliding layer ${l}`);
          }
          assert(once.bytesUsed() <= once.nominal(), `${once.bytesUsed()} > ${once.nominal()}`);
          // Prefill a prompt, then decode the rest one token at a time ("last" logits).
          const cache = model.createCache();
          const prompt = 9;
          const first = await model.prefill(ids.subarray(0, prompt), cache, { chunkSize: 4 });
          assertClose(first, row(full, prompt - 1, V), "prefill of the prompt");
          for (let i = prompt; i < SEQUENCE; i++) {
            const logits = await model.forward(ids.subarray(i, i + 1), cache);
            assertClose(logits, row(full, i, V), `decode step at position ${i}`);
          }
          assertEquals(cache.nextPosition, SEQUENCE);
          assertEquals(cache.tokensSeen, SEQUENCE);
          // Token by token, sliding layers really dropped what fell out of their window.
          for (let l = 0; l < c.numLayers; l++) {
            const window = c.layers[l].slidingWindow;
            for (const n of cache.lengths(l)) {
              if (window === null) assertEquals(n, SEQUENCE, `global layer ${l} holds everything`);
              else assert(n <= window + 1, `sliding layer ${l} holds ${n} > window ${window} + 1`);
            }
          }
          if (c.architecture === "gemma3") {
            const windows = c.layers.map((l) => l.slidingWindow);
            assert(windows.some((w) => w === null), "gemma3 has global layers");
            assert(
              windows.some((w) => w !== null && w < SEQUENCE / 2),
              `gemma3's sliding windows ${windows} must be well inside the sequence`,
            );
          }
        });

        await t.step(
          "a store grows into a released one's memory; no logit bit changes",
          async () => {
            const first = model.createCache();
            const want = await model.prefill(ids, first);
            const buffers = (cache: CpuKvStore) =>
              Array.from(
                { length: c.numLayers },
                (_, l) =>
                  Array.from({ length: c.numKvHeads }, (_, h) => cache.segment(l, h).keys.buffer),
              )
                .flat();
            const released = new Set(buffers(first));
            first.release();
            const second = model.createCache();
            assertBitIdentical(
              await model.prefill(ids, second),
              want,
              "prefill into reused memory",
            );
            assert(
              buffers(second).some((b) => released.has(b)),
              "the model's stores share a pool",
            );
          },
        );

        await t.step("evicting nothing changes no logit bit", async () => {
          const prefix = 17;
          const plain = model.createCache();
          await model.forward(ids.subarray(0, prefix), plain, { logits: "none" });
          const want = await model.forward(ids.subarray(prefix), plain, { logits: "all" });

          const cache = model.createCache();
          await model.forward(ids.subarray(0, prefix), cache, { logits: "none" });
          for (let l = 0; l < c.numLayers; l++) {
            const before = cache.lengths(l);
            cache.evict(l, keepAll(cache, l));
            assertEquals(cache.lengths(l), before);
          }
          const got = await model.forward(ids.subarray(prefix), cache, { logits: "all" });
          assertBitIdentical(got, want, "logits after a keep-everything eviction");
          // Continue decoding: still bit-identical.
          const next = Int32Array.of(argmax(row(got, got.length / V - 1, V)));
          assertBitIdentical(
            await model.forward(next, cache),
            await model.forward(next, plain),
            "decode step after a keep-everything eviction",
          );
        });

        await t.step("real eviction keeps exactly the chosen entries", async () => {
          const prefix = 17;
          const cache = model.createCache();
          await model.forward(ids.subarray(0, prefix), cache, { logits: "none" });
          const bytesBefore = cache.bytesHeld();
          const expected: { positions: Int32Array; keys: Float32Array; values: Float32Array }[][] =
            [];
          for (let l = 0; l < c.numLayers; l++) {
            const keep: Int32Array[] = [];
            expected.push([]);
            for (let h = 0; h < c.numKvHeads; h++) {
              const seg = cache.segment(l, h);
              // A different subset per layer and head; the newest entry always stays.
              const idx: number[] = [];
              for (let i = 0; i < seg.length; i++) {
                if ((i + h + l) % 3 !== 0 || i === seg.length - 1) idx.push(i);
              }
              keep.push(Int32Array.from(idx));
              const d = c.headDim;
              expected[l].push({
                positions: Int32Array.from(idx, (i) => seg.positions[i]),
                keys: concat(idx.map((i) => seg.keys.slice(i * d, (i + 1) * d))),
                values: concat(idx.map((i) => seg.values.slice(i * d, (i + 1) * d))),
              });
            }
            cache.evict(l, keep);
          }
          for (let l = 0; l < c.numLayers; l++) {
            assertEquals(
              cache.lengths(l),
              Int32Array.from(expected[l], (e) => e.positions.length),
              `layer ${l} lengths`,
            );
            for (let h = 0; h < c.numKvHeads; h++) {
              const seg = cache.segment(l, h);
              assertEquals(
                seg.positions,
                expected[l][h].positions,
                `layer ${l} head ${h} positions`,
              );
              assertEquals(seg.keys, expected[l][h].keys, `layer ${l} head ${h} keys`);
              assertEquals(seg.values, expected[l][h].values, `layer ${l} head ${h} values`);
            }
          }
          assert(
            cache.bytesHeld() < bytesBefore,
            `bytesHeld ${cache.bytesHeld()} did not fall below ${bytesBefore}`,
          );
          assertEquals(cache.bytesHeld(), cache.bytesUsed(), "evicted storage is exactly sized");
          assertEquals(cache.nextPosition, prefix, "eviction does not move the next position");

          const got = await model.forward(ids.subarray(prefix), cache, { logits: "all" });
          assert(got.every(Number.isFinite), "logits after eviction must be finite");
          const diff = maxAbsDiff(got, full.subarray(prefix * V));
          assert(diff > 1e-3, `evicting a third of the cache changed the logits by only ${diff}`);
          // The continuation appended after the kept entries, at the right positions.
          for (let l = 0; l < c.numLayers; l++) {
            if (c.layers[l].slidingWindow !== null) continue;
            for (let h = 0; h < c.numKvHeads; h++) {
              const positions = cache.segment(l, h).positions;
              assertEquals(
                positions,
                Int32Array.from([
                  ...expected[l][h].positions,
                  ...Array.from({ length: SEQUENCE - prefix }, (_, i) => prefix + i),
                ]),
              );
            }
          }
        });

        await t.step("mark/restore: nothing leaks between queries", async () => {
          const contextLength = 15;
          const context = ids.subarray(0, contextLength);
          const queryA = randomIds(5, V, 7);
          const queryB = randomIds(6, V, 8);
          const cache = model.createCache();
          await model.prefill(context, cache, { chunkSize: 6 });
          const mark = cache.mark();
          const lengthsAtMark = Array.from({ length: c.numLayers }, (_, l) => cache.lengths(l));

          // Query A and a few greedy decode steps.
          const logitsA = await model.forward(queryA, cache, { logits: "all" });
          let next = argmax(row(logitsA, queryA.length - 1, V));
          for (let step = 0; step < 3; step++) {
            next = argmax(await model.forward(Int32Array.of(next), cache));
          }
          assertEquals(cache.nextPosition, contextLength + queryA.length + 3);
          cache.restore(mark);
          assertEquals(cache.nextPosition, contextLength);
          assertEquals(cache.tokensSeen, contextLength);
          for (let l = 0; l < c.numLayers; l++) {
            assertEquals(cache.lengths(l), lengthsAtMark[l], `layer ${l} lengths after restore`);
          }

          // Query B equals a fresh run of context + B.
          const logitsB = await model.forward(queryB, cache, { logits: "all" });
          const fresh = model.createCache();
          const freshAll = await model.forward(
            Int32Array.from([...context, ...queryB]),
            fresh,
            { logits: "all" },
          );
          assertClose(logitsB, freshAll.subarray(contextLength * V), "query B after restore");

          // Restoring again and rerunning A reproduces A exactly as before.
          cache.restore(mark);
          const againA = await model.forward(queryA, cache, { logits: "all" });
          assertBitIdentical(againA, logitsA, "query A rerun after restore");
        });

        await t.step("taps deliver shapes and statistics for every layer", async () => {
          const prefix = 10;
          const T = 8;
          const cache = model.createCache();
          await model.forward(ids.subarray(0, prefix), cache, { logits: "none" });
          const seen: number[] = [];
          await model.forward(ids.subarray(prefix, prefix + T), cache, {
            logits: "none",
            taps: {
              stats: {
                columnSum: true,
                columnMax: true,
                lastWindowMean: 3,
                lastRow: true,
                gqa: "mean",
              },
              onLayer: (tap: LayerTap) => {
                seen.push(tap.layer);
                checkTap(tap, cache, T, prefix);
              },
            },
          });
          assertEquals(seen, Array.from({ length: c.numLayers }, (_, l) => l));

          // A per-layer request: only layer 0 gets statistics.
          const perLayer: boolean[] = [];
          await model.forward(ids.subarray(prefix + T, prefix + T + 2), cache, {
            logits: "none",
            taps: {
              stats: (l) => (l === 0 ? { lastRow: true } : undefined),
              onLayer: (tap) => {
                perLayer.push(tap.stats !== null);
                if (tap.stats !== null) {
                  assertEquals(Object.keys(tap.stats[0]), ["lastRow"]);
                }
              },
            },
          });
          assertEquals(perLayer, Array.from({ length: c.numLayers }, (_, l) => l === 0));
        });

        await t.step("hidden projections equal hidden · W and change no logit bit", async () => {
          const D = c.hiddenSize;
          const P = 5;
          const next = seededRandom(7);
          // Layer 1 asks for nothing; the others get their own W.
          const weights = Array.from(
            { length: c.numLayers },
            (_, l) =>
              l === 1 ? undefined : Float32Array.from({ length: D * P }, () => next() - 0.5),
          );
          const plain = await chunkedLogits(model, ids.subarray(0, 12), 12);
          const cache = model.createCache();
          const taps: LayerTap[] = [];
          const projected = await model.forward(ids.subarray(0, 12), cache, {
            logits: "all",
            taps: {
              hiddenProjection: (l) => Promise.resolve(weights[l]),
              onLayer: (tap) => void taps.push({ ...tap, hidden: tap.hidden.slice() }),
            },
          });
          assertBitIdentical(projected, plain, "logits with projections");
          for (const tap of taps) {
            const w = weights[tap.layer];
            if (w === undefined) {
              assertEquals(tap.projected, undefined, `layer ${tap.layer}: nothing was asked`);
              continue;
            }
            assert(tap.projected !== undefined, `layer ${tap.layer}: projection missing`);
            assertEquals(tap.projected.length, 12 * P);
            let worst = 0;
            for (let t = 0; t < 12; t++) {
              for (let p = 0; p < P; p++) {
                let expected = 0;
                for (let i = 0; i < D; i++) expected += tap.hidden[t * D + i] * w[i * P + p];
                worst = Math.max(worst, Math.abs(tap.projected[t * P + p] - expected));
              }
            }
            assert(worst <= 1e-4, `layer ${tap.layer}: |hidden·W − projected| ${worst}`);
          }
        });

        /** Every check on one layer's tap. */
        function checkTap(tap: LayerTap, cache: CpuKvStore, T: number, start: number): void {
          const { layer } = tap;
          const d = c.headDim;
          assertEquals(tap.positions, Int32Array.from({ length: T }, (_, i) => start + i));
          assertEquals(tap.hidden.length, T * c.hiddenSize, `layer ${layer} hidden`);
          assertEquals(tap.queries.length, T * c.numHeads * d, `layer ${layer} queries`);
          assertEquals(tap.keys.length, T * c.numKvHeads * d, `layer ${layer} keys`);
          assertEquals(tap.values.length, T * c.numKvHeads * d, `layer ${layer} values`);
          const lengths = cache.lengths(layer);
          assert(tap.stats !== null, `layer ${layer}: stats were requested`);
          assertEquals(tap.stats.length, c.numKvHeads);
          const window = c.layers[layer].slidingWindow;
          for (let h = 0; h < c.numKvHeads; h++) {
            const seg = cache.segment(layer, h);
            // The tapped keys and values are the ones the store holds for this chunk.
            for (let t = 0; t < T; t++) {
              const at = seg.length - T + t;
              const src = (t * c.numKvHeads + h) * d;
              assertEquals(seg.keys.slice(at * d, (at + 1) * d), tap.keys.slice(src, src + d));
              assertEquals(seg.values.slice(at * d, (at + 1) * d), tap.values.slice(src, src + d));
            }
            const s = tap.stats[h];
            const n = lengths[h];
            for (const key of ["columnSum", "columnMax", "lastWindowMean", "lastRow"] as const) {
              assertEquals(s[key]?.length, n, `layer ${layer} head ${h} ${key} length`);
            }
            const colSum = s.columnSum!;
            const colMax = s.columnMax!;
            const win = s.lastWindowMean!;
            const last = s.lastRow!;
            const what = `layer ${layer} head ${h}`;
            assert(Math.abs(sum(colSum) - T) <= 1e-4, `${what}: Σ columnSum ${sum(colSum)} ≠ ${T}`);
            assert(Math.abs(sum(win) - 1) <= 1e-5, `${what}: Σ lastWindowMean ${sum(win)} ≠ 1`);
            assert(Math.abs(sum(last) - 1) <= 1e-5, `${what}: Σ lastRow ${sum(last)} ≠ 1`);
            const lastPos = start + T - 1;
            for (let j = 0; j < n; j++) {
              assert(colMax[j] >= 0 && colMax[j] <= 1 + 1e-6, `${what}: columnMax ${colMax[j]}`);
              assert(colMax[j] >= last[j] - 1e-6, `${what}: columnMax < lastRow at ${j}`);
              assert(colMax[j] >= win[j] - 1e-6, `${what}: columnMax < lastWindowMean at ${j}`);
              assert(colSum[j] >= colMax[j] - 1e-6, `${what}: columnSum < columnMax at ${j}`);
              const kPos = seg.positions[j];
              if (window !== null && lastPos - kPos >= window) {
                assertEquals(last[j], 0, `${what}: last query sees position ${kPos}`);
              }
            }
            // The newest entry is only visible to the last query.
            assert(
              Math.abs(colSum[n - 1] - last[n - 1]) <= 1e-6,
              `${what}: the last entry has column sum ${colSum[n - 1]} but last-row ${last[n - 1]}`,
            );
          }
        }

        await t.step("bad token ids and overlong contexts are input errors", async () => {
          const cache = model.createCache();
          for (const bad of [V, V + 1000, -1]) {
            const error = await assertRejects(
              () => model.forward(Int32Array.of(1, 2, bad), cache),
              InputError,
              "config.json",
            );
            assert(error.message.includes(String(bad)), `"${error.message}" names the id ${bad}`);
            assert(!error.message.includes("\n"), "one line");
          }
          assertEquals(cache.nextPosition, 0, "a rejected chunk leaves the cache untouched");
          assertEquals(cache.lengths(0), new Int32Array(c.numKvHeads));
        });
      });

      await t.step("context beyond max_position_embeddings is an input error", async () => {
        const options: RandomModelOptions = {
          ...variant.options,
          overrides: { max_position_embeddings: 16 },
        };
        await withModel(options, executor, async (model) => {
          assertEquals(model.config.maxPositionEmbeddings, 16);
          const ids = randomIds(20, model.config.vocabSize, 3);
          await assertRejects(
            () => model.forward(ids, model.createCache()),
            InputError,
            "max_position_embeddings 16",
          );
          const cache = model.createCache();
          await model.forward(ids.subarray(0, 10), cache);
          const error = await assertRejects(
            () => model.forward(ids.subarray(10, 17), cache),
            InputError,
            "config.json",
          );
          assert(error.message.includes("17"), `"${error.message}" names the context length`);
          assertEquals(cache.nextPosition, 10);
          // Exactly the limit is fine.
          const logits = await model.forward(ids.subarray(10, 16), cache);
          assertEquals(logits.length, model.config.vocabSize);
        });
      });
    });
  }
}
