/**
 * The WebGPU backend against the CPU backend on tiny random models of every family (and
 * variants that switch on biases, RoPE scaling and the final soft-cap), and against the HF
 * golden logits: the whole forward, 32 greedy decode steps, the taps, eviction and
 * mark/restore through the model, f16 weights, and weights split across small bindings.
 *
 * Tolerances: logits within 1e-3 of the CPU backend (f32 weights; measured ~1e-5) and
 * identical greedy tokens; HF fixtures within 1e-4 · max(1, max|logit|) like the CPU's own
 * fidelity test; taps within 1e-4 relative; f16 weights within 1e-2 · max(1, max|logit|).
 */

import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import type { CpuKvStore, KvStore } from "../kernels/kv_store.ts";
import { seededRandom } from "../kernels/random.ts";
import type { GpuContext } from "../kernels/webgpu/device.ts";
import type { GpuKvStore } from "../kernels/webgpu/kv_store.ts";
import { gpuTest, relativeError, testAdapter } from "../kernels/webgpu/test_support.ts";
import { argmax } from "./generate.ts";
import { type LayerTap, Model } from "./model.ts";
import { makeRandomModel, type RandomModelOptions } from "./random_model.ts";
import { chooseBackend } from "./model_webgpu.ts";
import { main } from "../cli.ts";

const TOLERANCE = 1e-3;
const SEQUENCE = 29;
const DECODE_STEPS = 32;

const VARIANTS: { name: string; options: RandomModelOptions }[] = [
  { name: "llama", options: { arch: "llama", seed: 201 } },
  {
    name: "llama, biases, llama3 rope",
    options: {
      arch: "llama",
      seed: 202,
      overrides: { attention_bias: true, mlp_bias: true },
      ropeScaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 16,
      },
    },
  },
  { name: "qwen2", options: { arch: "qwen2", seed: 203 } },
  { name: "qwen3", options: { arch: "qwen3", seed: 204 } },
  {
    name: "qwen3, yarn rope",
    options: {
      arch: "qwen3",
      seed: 205,
      ropeScaling: { rope_type: "yarn", factor: 4, original_max_position_embeddings: 16 },
    },
  },
  { name: "gemma3", options: { arch: "gemma3", seed: 206 } },
  {
    name: "gemma3, final soft-cap",
    options: { arch: "gemma3", seed: 207, overrides: { final_logit_softcapping: 3 } },
  },
];

function randomIds(count: number, vocab: number, seed: number): Int32Array {
  const next = seededRandom(seed);
  return Int32Array.from({ length: count }, () => Math.floor(next() * vocab));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assertEquals(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

function assertLogitsClose(got: Float32Array, want: Float32Array, what: string, tol = TOLERANCE) {
  const worst = maxAbsDiff(got, want);
  assert(worst <= tol, `${what}: max |Δlogit| ${worst} exceeds ${tol}`);
  return worst;
}

async function withModels(
  gpu: GpuContext,
  options: RandomModelOptions,
  fn: (cpu: Model, dev: Model<GpuKvStore>) => Promise<void>,
  weights: "f32" | "f16" = "f32",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_webgpu_test_" });
  try {
    await makeRandomModel(dir, options);
    const cpu = await Model.load(dir);
    const dev = await Model.load(dir, { backend: "webgpu", gpu: { context: gpu, weights } });
    try {
      await fn(cpu, dev);
    } finally {
      dev.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Keep-sets: a different subset per layer and head, the newest entry always kept. */
function keepSets(cache: KvStore, layer: number): Int32Array[] {
  return Array.from(cache.lengths(layer), (n, h) => {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if ((i + h + layer) % 3 !== 0 || i === n - 1) idx.push(i);
    return Int32Array.from(idx);
  });
}

for (const variant of VARIANTS) {
  gpuTest(`WebGPU forward matches the CPU backend: ${variant.name}`, async (gpu, t) => {
    await withModels(gpu, variant.options, async (cpu, dev) => {
      const c = cpu.config;
      const V = c.vocabSize;
      const ids = randomIds(SEQUENCE, V, variant.options.seed);

      await t.step("every position's logits, one chunk and chunks of 5", async () => {
        const want = await cpu.forward(ids, cpu.createCache(), { logits: "all" });
        const got = await dev.forward(ids, dev.createCache(), { logits: "all" });
        const worst = assertLogitsClose(got, want, "one chunk");
        const cache = dev.createCache();
        const parts: Float32Array[] = [];
        for (let s = 0; s < SEQUENCE; s += 5) {
          parts.push(await dev.forward(ids.subarray(s, s + 5), cache, { logits: "all" }));
        }
        const chunked = new Float32Array(want.length);
        parts.reduce((at, p) => (chunked.set(p, at), at + p.length), 0);
        assertLogitsClose(chunked, want, "chunks of 5");
        console.log(`${variant.name}: max |Δlogit| vs CPU ${worst.toExponential(2)}`);
      });

      await t.step(`${DECODE_STEPS} greedy decode steps: same tokens, close logits`, async () => {
        const prompt = ids.subarray(0, 9);
        const cpuCache = cpu.createCache();
        const devCache = dev.createCache();
        let want = await cpu.prefill(prompt, cpuCache, { chunkSize: 4 });
        let got = await dev.prefill(prompt, devCache, { chunkSize: 4 });
        const tokens: number[][] = [[], []];
        for (let step = 0; step < DECODE_STEPS; step++) {
          assertLogitsClose(got, want, `decode step ${step}`);
          tokens[0].push(argmax(want));
          tokens[1].push(argmax(got));
          assertEquals(tokens[1], tokens[0], `greedy tokens up to step ${step}`);
          const next = Int32Array.of(tokens[0][step]);
          want = await cpu.forward(next, cpuCache);
          got = await dev.forward(next, devCache);
        }
        for (let l = 0; l < c.numLayers; l++) {
          assertEquals(devCache.lengths(l), cpuCache.lengths(l), `layer ${l} lengths`);
        }
        assertEquals(devCache.bytesHeld(), cpuCache.bytesHeld(), "bytes held");
      });

      await t.step("taps: the same hidden states, q/k/v and statistics", async () => {
        const prefix = 10;
        const T = 8;
        const stats = {
          columnSum: true,
          columnMax: true,
          lastWindowMean: 3,
          lastRow: true,
          gqa: "max" as const,
        };
        const collect = async <S extends KvStore>(model: Model<S>): Promise<LayerTap[]> => {
          const cache = model.createCache();
          await model.forward(ids.subarray(0, prefix), cache, { logits: "none" });
          const taps: LayerTap[] = [];
          await model.forward(ids.subarray(prefix, prefix + T), cache, {
            logits: "none",
            taps: { stats, onLayer: (tap) => void taps.push(tap) },
          });
          return taps;
        };
        const want = await collect(cpu);
        const got = await collect(dev);
        assertEquals(got.map((x) => x.layer), want.map((x) => x.layer));
        for (let l = 0; l < want.length; l++) {
          assertEquals(got[l].positions, want[l].positions);
          for (const key of ["hidden", "queries", "keys", "values"] as const) {
            const err = relativeError(got[l][key], want[l][key]);
            assert(err <= 1e-4, `layer ${l} ${key}: relative error ${err}`);
          }
          for (let h = 0; h < c.numKvHeads; h++) {
            for (const key of ["columnSum", "columnMax", "lastWindowMean", "lastRow"] as const) {
              const err = relativeError(got[l].stats![h][key]!, want[l].stats![h][key]!);
              assert(err <= 1e-4, `layer ${l} head ${h} ${key}: relative error ${err}`);
            }
          }
        }
      });

      await t.step("eviction through the model: same entries, same continuation", async () => {
        const prefix = 17;
        const cpuCache = cpu.createCache();
        const devCache = dev.createCache();
        await cpu.forward(ids.subarray(0, prefix), cpuCache, { logits: "none" });
        await dev.forward(ids.subarray(0, prefix), devCache, { logits: "none" });
        for (let l = 0; l < c.numLayers; l++) {
          const keep = keepSets(cpuCache, l);
          cpuCache.evict(l, keep);
          devCache.evict(l, keep);
          for (let h = 0; h < c.numKvHeads; h++) {
            const a = (cpuCache as CpuKvStore).segment(l, h);
            const b = await devCache.readSegment(l, h);
            assertEquals(b.positions, a.positions, `layer ${l} head ${h} positions`);
            const err = relativeError(b.keys, a.keys);
            assert(err <= 1e-4, `layer ${l} head ${h} keys: relative error ${err}`);
          }
        }
        assertEquals(devCache.bytesHeld(), cpuCache.bytesHeld(), "exactly sized after eviction");
        const want = await cpu.forward(ids.subarray(prefix), cpuCache, { logits: "all" });
        const got = await dev.forward(ids.subarray(prefix), devCache, { logits: "all" });
        assertLogitsClose(got, want, "continuation after eviction");
      });

      await t.step("mark/restore: queries are isolated as on the CPU", async () => {
        const context = ids.subarray(0, 15);
        const queryA = randomIds(5, V, 7);
        const queryB = randomIds(6, V, 8);
        const run = async <S extends KvStore>(model: Model<S>) => {
          const cache = model.createCache();
          await model.prefill(context, cache, { chunkSize: 6 });
          const mark = cache.mark();
          const a = await model.forward(queryA, cache, { logits: "all" });
          let next = argmax(a.subarray(a.length - V));
          for (let s = 0; s < 3; s++) {
            next = argmax(await model.forward(Int32Array.of(next), cache));
          }
          cache.restore(mark);
          const lengths = Array.from({ length: c.numLayers }, (_, l) => cache.lengths(l));
          const b = await model.forward(queryB, cache, { logits: "all" });
          return { a, b, lengths, next };
        };
        const want = await run(cpu);
        const got = await run(dev);
        assertEquals(got.lengths, want.lengths, "lengths after restore");
        assertEquals(got.next, want.next, "greedy tokens of query A");
        assertLogitsClose(got.a, want.a, "query A");
        assertLogitsClose(got.b, want.b, "query B after restore");
      });
    });
  });
}

gpuTest("WebGPU forward with f16 weights stays close to the CPU backend", async (gpu) => {
  if (!gpu.f16) {
    console.log(`f16 weights skipped: ${gpu.adapterName} has no shader-f16`);
    return;
  }
  await withModels(gpu, { arch: "qwen3", seed: 301 }, async (cpu, dev) => {
    const ids = randomIds(SEQUENCE, cpu.config.vocabSize, 9);
    const want = await cpu.forward(ids, cpu.createCache(), { logits: "all" });
    const got = await dev.forward(ids, dev.createCache(), { logits: "all" });
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = assertLogitsClose(got, want, "f16 weights", 1e-2 * Math.max(1, scale));
    console.log(
      `f16 weights: max |Δlogit| ${worst.toExponential(2)} (max |logit| ${scale.toFixed(2)})`,
    );
    assertEquals(dev.webgpu!.weightDtype, "f16");
  }, "f16");
});

gpuTest(
  "WebGPU forward with weights, tables and logits split across 4 KiB bindings",
  async (gpu) => {
    await withModels(gpu, { arch: "gemma3", seed: 302 }, async (cpu, dev) => {
      const ids = randomIds(SEQUENCE, cpu.config.vocabSize, 10);
      const want = await cpu.forward(ids, cpu.createCache(), { logits: "all" });
      const cache = dev.createCache();
      const parts: Float32Array[] = [];
      for (let s = 0; s < SEQUENCE; s += 4) {
        parts.push(await dev.forward(ids.subarray(s, s + 4), cache, { logits: "all" }));
      }
      const got = new Float32Array(want.length);
      parts.reduce((at, p) => (got.set(p, at), at + p.length), 0);
      assertLogitsClose(got, want, "split bindings");
      // A chunk whose activations do not fit one binding is refused with advice.
      await assertRejects(
        () => dev.forward(ids, dev.createCache(), { logits: "all" }),
        Error,
        "use a smaller prefill chunk",
      );
    });
  },
  { maxBinding: 4096 },
);

const FIXTURES = new URL("../tests/fixtures/hf/", import.meta.url).pathname;
const fixtureNames = [...Deno.readDirSync(FIXTURES)].filter((e) => e.isDirectory).map((e) => e.name)
  .sort();

gpuTest("WebGPU fidelity vs HF transformers on every fixture", async (gpu, t) => {
  for (const name of fixtureNames) {
    await t.step(name, async () => {
      const dir = FIXTURES + name;
      const golden: { ids: number[] } = JSON.parse(await Deno.readTextFile(`${dir}/golden.json`));
      const bytes = await Deno.readFile(`${dir}/logits.f32`);
      const want = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      const model = await Model.load(dir, { backend: "webgpu", gpu: { context: gpu } });
      try {
        const got = await model.forward(Int32Array.from(golden.ids), model.createCache(), {
          logits: "all",
        });
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        assertLogitsClose(got, want, name, 1e-4 * Math.max(1, scale));
      } finally {
        model.dispose();
      }
    });
  }
});

gpuTest("backend choice: auto skips fallback adapters, webgpu takes any", async () => {
  const auto = await chooseBackend("auto");
  assertEquals(auto?.backend, testAdapter!.fallback ? "cpu" : "webgpu");
  const webgpu = await chooseBackend("webgpu");
  assertEquals(webgpu?.backend, "webgpu");
  assert(webgpu!.message.includes(testAdapter!.description), webgpu!.message);
  assertEquals((await chooseBackend("cpu"))?.backend, "cpu");
});

gpuTest("CLI forward --backend webgpu writes the CPU backend's logits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_webgpu_cli_" });
  try {
    await makeRandomModel(`${dir}/model`, { arch: "qwen3", seed: 303 });
    const ids = "1,5,9,200,7,7,3";
    const files: Float32Array[] = [];
    for (const backend of ["cpu", "webgpu"]) {
      const out = `${dir}/${backend}.f32`;
      const args = [
        "forward",
        "--model",
        `${dir}/model`,
        "--ids",
        ids,
        "--out",
        out,
        "--backend",
        backend,
      ];
      if (backend === "cpu") {
        assertEquals(await main(args), 0);
      } else {
        // A fresh process, where onnxruntime is never loaded: the GPU path must not need it.
        const cli = new URL("../cli.ts", import.meta.url).pathname;
        const run = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", cli, ...args],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assertEquals(run.code, 0, new TextDecoder().decode(run.stderr));
      }
      const bytes = await Deno.readFile(out);
      files.push(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    }
    assertEquals(files[1].length, 7 * 301);
    assertLogitsClose(files[1], files[0], "CLI logits");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "backend webgpu without an adapter is an input error",
  ignore: testAdapter !== null,
  async fn() {
    await assertRejects(
      () => Model.load(FIXTURES + "llama", { backend: "webgpu" }),
      InputError,
      "no WebGPU adapter",
    );
  },
});
