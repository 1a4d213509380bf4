/**
 * The GPU section of `evictbench bench --backend webgpu`: every figure is a ratio to a
 * ceiling measured on the same device in the same run, and GPU times come from timestamp
 * queries (wall time where the device has none).
 *
 * 1. Ceilings: device copy bandwidth (copyBufferToBuffer, read + write) and the best dense
 *    matmul rate measured below.
 * 2. Dense matmul GFLOP/s, f32 and f16 weights, for a prefill-shaped GEMM and a decode GEMV.
 * 3. One decode step of attention over a long cache, and its time as eviction shrinks the
 *    kept ratio (time should fall with the entries held).
 * 4. Prefill and decode tokens/s of a random Qwen3-shaped model through Model (smaller on a
 *    fallback adapter such as Mesa's llvmpipe, where speed is not a target), with the GPU's
 *    own share of each decode step (the rest is host and synchronisation).
 *
 * @module
 */

import { DEFAULT_PREFILL_CHUNK, Model } from "../engine/model.ts";
import { makeRandomModel, QWEN3_0_6B_SHAPE } from "../engine/random_model.ts";
import { seededRandom } from "../kernels/random.ts";
import { findAdapter, GpuContext } from "../kernels/webgpu/device.ts";
import { GpuKvStore } from "../kernels/webgpu/kv_store.ts";
import { matmul, releaseMatrix, uploadMatrix, type WeightDtype } from "../kernels/webgpu/matmul.ts";
import { denseFlops, latencyMs } from "./runtime.ts";

/** Options of {@linkcode runGpuBench}. */
export interface GpuBenchOptions {
  quick: boolean;
  /** Write the results as JSON here. */
  out?: string;
  /** Write the random benchmark model here and keep it. */
  keepModel?: string;
}

/** One matmul measurement. */
export interface MatmulFigure {
  dtype: WeightDtype;
  shape: [number, number, number];
  ms: number;
  gflops: number;
}

/** Decode attention at one kept ratio. */
export interface AttentionFigure {
  keptRatio: number;
  entriesPerHead: number;
  ms: number;
  /** K and V bytes read over the time. */
  gbps: number;
  /** Time relative to the full cache. */
  timeRatio: number;
}

/** Model throughput with one weight dtype. */
export interface GpuModelFigure {
  weights: WeightDtype;
  loadMs: number;
  prefillTokens: number;
  prefillMs: number;
  prefillTokensPerS: number;
  prefillGflops: number;
  decodeContext: number;
  decodeMsPerToken: number;
  /** GPU time of one decode step (timestamp queries), or null without them. */
  decodeGpuMs: number | null;
}

/** Everything the GPU section measured. */
export interface GpuBenchResult {
  adapter: string;
  fallback: boolean;
  f16: boolean;
  timestamps: boolean;
  copyGbps: number;
  matmul: MatmulFigure[];
  attention: AttentionFigure[];
  models: GpuModelFigure[];
}

function line(label: string, value: string): void {
  console.log(`${label.padEnd(46)} ${value}`);
}

/** Time `record` repeated `repeats` times in one batch: GPU ms per repeat (or wall ms). */
async function timeBatch(
  gpu: GpuContext,
  repeats: number,
  record: (rec: ReturnType<GpuContext["recorder"]>) => void,
): Promise<number> {
  // Warm up (pipelines, first-use costs) with one repeat.
  const warm = gpu.recorder();
  record(warm);
  await warm.finish();
  const rec = gpu.recorder({ timed: true });
  for (let i = 0; i < repeats; i++) record(rec);
  const t0 = performance.now();
  const gpuMs = await rec.finish();
  return (gpuMs ?? performance.now() - t0) / repeats;
}

async function measureCopy(gpu: GpuContext, bytes: number, repeats: number): Promise<number> {
  const size = Math.min(bytes, gpu.maxBuffer);
  const a = gpu.createBuffer(size, "copy a");
  const b = gpu.createBuffer(size, "copy b");
  const ms = await timeBatch(gpu, repeats, (rec) => rec.copy(a, 0, b, 0, size));
  gpu.release(a);
  gpu.release(b);
  return (2 * size) / (ms * 1e6);
}

async function measureMatmul(
  gpu: GpuContext,
  dtype: WeightDtype,
  [M, N, K]: [number, number, number],
  repeats: number,
): Promise<MatmulFigure> {
  const next = seededRandom(M + N + K);
  const w = Float32Array.from({ length: N * K }, () => next() - 0.5);
  const matrix = uploadMatrix(gpu, w, { rows: N, cols: K, dtype, label: "bench w" });
  const x = gpu.upload(Float32Array.from({ length: M * K }, () => next() - 0.5), "bench x");
  const y = gpu.createBuffer(M * N * 4, "bench y");
  const ms = await timeBatch(gpu, repeats, (rec) => matmul(rec, x, matrix, y, { M }));
  releaseMatrix(gpu, matrix);
  gpu.release(x);
  gpu.release(y);
  return { dtype, shape: [M, N, K], ms, gflops: (2 * M * N * K) / (ms * 1e6) };
}

async function measureAttention(
  gpu: GpuContext,
  o: { entries: number; kvHeads: number; group: number; headDim: number; repeats: number },
  ratios: number[],
): Promise<AttentionFigure[]> {
  const { entries, kvHeads, group, headDim } = o;
  const next = seededRandom(5);
  const figures: AttentionFigure[] = [];
  let fullMs = 0;
  for (const ratio of ratios) {
    const store = new GpuKvStore(gpu, { numLayers: 1, numKvHeads: kvHeads, group, headDim });
    const chunk = 4096;
    for (let start = 0; start < entries; start += chunk) {
      const n = Math.min(chunk, entries - start);
      const k = Float32Array.from({ length: n * kvHeads * headDim }, () => next() - 0.5);
      store.append(0, k, k, Int32Array.from({ length: n }, (_, i) => start + i));
    }
    if (ratio < 1) {
      store.evict(
        0,
        Array.from({ length: kvHeads }, () => {
          const kept: number[] = [];
          for (let j = 0; j < entries; j++) if (next() < ratio) kept.push(j);
          return Int32Array.from(kept);
        }),
      );
    }
    const q = gpu.upload(
      Float32Array.from({ length: kvHeads * group * headDim }, () => next() - 0.5),
      "bench q",
    );
    const pos = gpu.upload(Int32Array.of(entries), "bench pos");
    const out = gpu.createBuffer(kvHeads * group * headDim * 4, "bench out");
    const ms = await timeBatch(gpu, o.repeats, (rec) => {
      store.attendDevice(rec, 0, { q, positions: pos, out, tokens: 1 }, {
        scale: headDim ** -0.5,
      });
    });
    if (ratio === 1) fullMs = ms;
    const held = store.bytesUsed();
    figures.push({
      keptRatio: ratio,
      entriesPerHead: Math.round(store.lengths(0).reduce((a, n) => a + n, 0) / kvHeads),
      ms,
      gbps: (held * (2 * headDim) / (2 * headDim + 1)) / (ms * 1e6),
      timeRatio: fullMs > 0 ? ms / fullMs : 1,
    });
    store.clear();
    for (const b of [q, pos, out]) gpu.release(b);
  }
  return figures;
}

async function measureModel(
  gpu: GpuContext,
  dir: string,
  o: { weights: WeightDtype; prefillTokens: number; decodeSteps: number },
): Promise<GpuModelFigure> {
  const t0 = performance.now();
  const model = await Model.load(dir, {
    backend: "webgpu",
    gpu: { context: gpu, weights: o.weights, timed: true },
  });
  const loadMs = performance.now() - t0;
  try {
    const next = seededRandom(11);
    const ids = Int32Array.from(
      { length: o.prefillTokens },
      () => Math.floor(next() * model.config.vocabSize),
    );
    const prefill = await latencyMs(async () => {
      const cache = model.createCache();
      await model.prefill(ids, cache);
      cache.clear();
    }, { iterations: 2, warmup: 1 });
    const cache = model.createCache();
    let logits = await model.prefill(ids, cache);
    const mark = cache.mark();
    let step = 0;
    const gpuMs: number[] = [];
    const decode = await latencyMs(async () => {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      logits = await model.forward(Int32Array.of(best), cache, { logits: "last" });
      const ms = model.webgpu!.lastGpuMs;
      if (ms !== null) gpuMs.push(ms);
      if (++step % 32 === 0) cache.restore(mark);
    }, { iterations: o.decodeSteps, warmup: 2 });
    cache.clear();
    gpuMs.sort((a, b) => a - b);
    return {
      weights: o.weights,
      loadMs,
      prefillTokens: o.prefillTokens,
      prefillMs: prefill.medianMs,
      prefillTokensPerS: o.prefillTokens / (prefill.medianMs / 1000),
      prefillGflops: denseFlops(model.config, o.prefillTokens, 1) / (prefill.medianMs * 1e6),
      decodeContext: o.prefillTokens,
      decodeMsPerToken: decode.medianMs,
      decodeGpuMs: gpuMs.length > 0 ? gpuMs[Math.floor(gpuMs.length / 2)] : null,
    };
  } finally {
    model.dispose();
  }
}

/**
 * Run the GPU section and print it; sizes shrink on a fallback adapter (llvmpipe) or with
 * `quick`. Throws when there is no adapter.
 *
 * @example
 * ```ts
 * const result = await runGpuBench({ quick: true });
 * ```
 */
export async function runGpuBench(options: GpuBenchOptions): Promise<GpuBenchResult> {
  const adapter = await findAdapter();
  if (adapter === null) throw new Error("bench --backend webgpu: no WebGPU adapter is available");
  const gpu = await GpuContext.open({ adapter });
  const small = options.quick || adapter.fallback;
  console.log(
    `evictbench bench, GPU section (${small ? "small shapes" : "full"}): ${adapter.description}${
      adapter.fallback ? " (fallback adapter: correctness target, not speed)" : ""
    }, f16 ${gpu.f16 ? "yes" : "no"}, timestamps ${gpu.timestamps ? "yes" : "no"}`,
  );
  try {
    const copyGbps = await measureCopy(gpu, small ? 2 ** 24 : 2 ** 28, small ? 4 : 20);
    line("device copy bandwidth (read + write)", `${copyGbps.toFixed(1)} GB/s`);

    const dtypes: WeightDtype[] = gpu.f16 ? ["f32", "f16"] : ["f32"];
    const shapes: [number, number, number][] = small
      ? [[128, 512, 512], [1, 2048, 512]]
      : [[2048, 3072, 1024], [1, 8192, 4096]];
    const mm: MatmulFigure[] = [];
    for (const dtype of dtypes) {
      for (const shape of shapes) {
        const f = await measureMatmul(gpu, dtype, shape, small ? 3 : 20);
        mm.push(f);
        line(
          `matmul ${dtype} weights, M ${shape[0]} N ${shape[1]} K ${shape[2]}`,
          `${f.ms.toFixed(2)} ms = ${f.gflops.toFixed(1)} GFLOP/s`,
        );
      }
    }
    const peak = Math.max(...mm.map((f) => f.gflops));
    line("  matmul ceiling (best of the above)", `${peak.toFixed(1)} GFLOP/s`);

    const attn = await measureAttention(gpu, {
      entries: small ? 4096 : 32768,
      kvHeads: 8,
      group: 2,
      headDim: 128,
      repeats: small ? 3 : 50,
    }, [1, 0.5, 0.3, 0.1]);
    for (const a of attn) {
      line(
        `decode attention, kept ${a.keptRatio} (${a.entriesPerHead} entries × 8 heads)`,
        `${a.ms.toFixed(3)} ms, K+V at ${a.gbps.toFixed(1)} GB/s = ${
          (100 * a.gbps / copyGbps).toFixed(0)
        } % of copy bandwidth; ${a.timeRatio.toFixed(2)}× the full time`,
      );
    }

    const shape = small
      ? {
        ...QWEN3_0_6B_SHAPE,
        num_hidden_layers: 4,
        hidden_size: 256,
        intermediate_size: 768,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 64,
        vocab_size: 4096,
      }
      : QWEN3_0_6B_SHAPE;
    const dir = options.keepModel ?? await Deno.makeTempDir({ prefix: "evictbench-gpu-bench-" });
    const models: GpuModelFigure[] = [];
    try {
      await makeRandomModel(dir, {
        arch: "qwen3",
        seed: 0,
        dtype: "BF16",
        overrides: shape,
        reuse: true,
      });
      const tokens = small ? 128 : 2048;
      for (const weights of options.quick ? [dtypes[dtypes.length - 1]] : dtypes) {
        const m = await measureModel(gpu, dir, {
          weights,
          prefillTokens: tokens,
          decodeSteps: small ? 6 : 32,
        });
        models.push(m);
        const label =
          `${shape.num_hidden_layers} layers × ${shape.hidden_size}, ${weights} weights`;
        line(`model ${label}: load`, `${(m.loadMs / 1000).toFixed(1)} s`);
        line(
          `  prefill ${tokens} tokens (chunks of ${DEFAULT_PREFILL_CHUNK})`,
          `${m.prefillMs.toFixed(0)} ms = ${m.prefillTokensPerS.toFixed(1)} tokens/s, ${
            m.prefillGflops.toFixed(1)
          } GFLOP/s = ${(100 * m.prefillGflops / peak).toFixed(0)} % of the matmul ceiling`,
        );
        line(
          `  decode at ${m.decodeContext} context`,
          `${m.decodeMsPerToken.toFixed(1)} ms/token = ${
            (1000 / m.decodeMsPerToken).toFixed(1)
          } tokens/s${
            m.decodeGpuMs === null
              ? ""
              : `; GPU busy ${m.decodeGpuMs.toFixed(1)} ms (${
                (100 * m.decodeGpuMs / m.decodeMsPerToken).toFixed(0)
              } %)`
          }`,
        );
      }
    } finally {
      if (options.keepModel === undefined) await Deno.remove(dir, { recursive: true });
    }
    const result: GpuBenchResult = {
      adapter: adapter.description,
      fallback: adapter.fallback,
      f16: gpu.f16,
      timestamps: gpu.timestamps,
      copyGbps,
      matmul: mm,
      attention: attn,
      models,
    };
    if (options.out !== undefined) {
      await Deno.writeTextFile(options.out, JSON.stringify(result, null, 2) + "\n");
    }
    return result;
  } finally {
    gpu.destroy();
  }
}
