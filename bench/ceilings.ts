/**
 * Ceilings measured in the same run as the figures they judge: the best dense f32 GEMM rate
 * onnxruntime reaches on this machine, and the memory read bandwidth.
 *
 * @module
 */

import { GraphBuilder, tensorDataF32 } from "../kernels/onnx/graph.ts";
import {
  createSession,
  loadOrt,
  type OrtSession,
  type OrtTensor,
  readF32,
  tensorF32,
} from "../kernels/ort.ts";

/** A measured rate with how it was obtained. */
export interface Ceiling {
  /** GFLOP/s for compute, GB/s (1e9 bytes) for bandwidth. */
  value: number;
  detail: string;
}

/** The upper median of `xs` (the middle value, or the larger of the two middle ones). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** One open GEMM session of a {@linkcode GemmPeakProbe}, with its input and work. */
interface TimedGemm {
  session: OrtSession;
  feeds: Record<string, OrtTensor>;
  flops: number;
  label: string;
}

/**
 * GEMMs shaped like the model's linear layers, weight as an initializer (as the engine builds
 * them), [m, k] × [n, k]ᵀ, kept open so that samples can be interleaved with the work they
 * judge (the GEMM rate drifts by up to 1.2× within minutes here).
 */
export class GemmPeakProbe {
  readonly #gemms: TimedGemm[];

  private constructor(gemms: TimedGemm[]) {
    this.#gemms = gemms;
  }

  /** One session per [m, k, n] shape, each run once to warm it up. */
  static async create(
    shapes: [number, number, number][],
    options: { threads?: number } = {},
  ): Promise<GemmPeakProbe> {
    const gemms = [];
    for (const [m, k, n] of shapes) {
      const g = new GraphBuilder(`gemm_${m}x${k}x${n}`);
      const x = g.input("x", "float32", [m, k]);
      const w = new Float32Array(n * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
      g.output(g.gemm(x, g.initializer("w", tensorDataF32(w, [n, k]))), {
        name: "y",
        dataType: "float32",
        shape: [m, n],
      });
      const session = await createSession(g.build(), {
        name: "gemm peak",
        threads: options.threads,
      });
      const feeds = { x: tensorF32(new Float32Array(m * k).fill(0.25), [m, k]) };
      await session.run(feeds);
      gemms.push({ session, feeds, flops: 2 * m * k * n, label: `Gemm ${m}×${k}×${n}` });
    }
    return new GemmPeakProbe(gemms);
  }

  /** One run of each shape: GFLOP/s of each, in the order given. */
  async sample(): Promise<{ gflops: number; label: string }[]> {
    const out = [];
    for (const { session, feeds, flops, label } of this.#gemms) {
      const t = performance.now();
      await session.run(feeds);
      out.push({ gflops: flops / ((performance.now() - t) * 1e6), label });
    }
    return out;
  }

  /** Free the sessions. */
  async release(): Promise<void> {
    for (const { session } of this.#gemms) await session.release();
  }
}

/** The best shape's median GFLOP/s over `samples` (each sample one run of every shape). */
export function gemmPeakOf(samples: { gflops: number; label: string }[][]): Ceiling {
  let best: Ceiling = { value: 0, detail: "" };
  for (let i = 0; i < (samples[0]?.length ?? 0); i++) {
    const gflops = median(samples.map((s) => s[i].gflops));
    if (gflops > best.value) {
      best = { value: gflops, detail: `${samples[0][i].label}, median of ${samples.length}` };
    }
  }
  return best;
}

/** `repeats` samples of an open probe, which is then released. */
async function samplesOf<T>(
  probe: { sample(): Promise<T>; release(): Promise<void> },
  repeats: number,
): Promise<T[]> {
  const samples: T[] = [];
  for (let i = 0; i < repeats; i++) samples.push(await probe.sample());
  await probe.release();
  return samples;
}

/**
 * The best f32 GEMM rate over shapes like the model's: each shape's median of `repeats` runs,
 * the best shape's.
 */
export async function measureGemmPeak(
  shapes: [number, number, number][],
  options: { threads?: number; repeats?: number } = {},
): Promise<Ceiling> {
  const probe = await GemmPeakProbe.create(shapes, options);
  return gemmPeakOf(await samplesOf(probe, options.repeats ?? 5));
}

/**
 * Memory read probes over one buffer far larger than the caches: a ReduceSum, and a
 * matrix-vector product (a [rows, 16384] matrix given at run time times one row: dot products
 * that onnxruntime's GEMM kernel streams in place). Which one reads faster varies here (the
 * product has read 31–56 GB/s, the sum 27–39 GB/s, minutes apart), so a sample is the
 * better of the two. Samples can be interleaved with the work they judge, so that both see
 * the same machine.
 */
export class ReadBandwidthProbe {
  readonly bytes: number;
  readonly #sum: OrtSession;
  readonly #gemv: OrtSession;
  readonly #sumFeeds: Record<string, OrtTensor>;
  readonly #gemvFeeds: Record<string, OrtTensor>;

  private constructor(init: {
    bytes: number;
    sum: OrtSession;
    gemv: OrtSession;
    sumFeeds: Record<string, OrtTensor>;
    gemvFeeds: Record<string, OrtTensor>;
  }) {
    this.bytes = init.bytes;
    this.#sum = init.sum;
    this.#gemv = init.gemv;
    this.#sumFeeds = init.sumFeeds;
    this.#gemvFeeds = init.gemvFeeds;
  }

  /** Build both probes over about `bytes` of ones and check that each reads all of them. */
  static async create(
    bytes: number,
    options: { threads?: number } = {},
  ): Promise<ReadBandwidthProbe> {
    await loadOrt();
    const cols = 16384;
    const rows = Math.max(1, Math.floor(bytes / 4 / cols));
    const n = rows * cols;
    const data = new Float32Array(n).fill(1);

    const sum = new GraphBuilder("read_bandwidth_sum");
    sum.output(sum.reduce("ReduceSum", sum.input("x", "float32", [n]), [0], { keepdims: false }), {
      name: "s",
      dataType: "float32",
      shape: [],
    });
    const gemv = new GraphBuilder("read_bandwidth_gemv");
    const row = gemv.input("row", "float32", [1, cols]);
    const matrix = gemv.input("m", "float32", [rows, cols]);
    gemv.output(gemv.node("Gemm", [row, matrix], { transB: { int: 1 } }), {
      name: "s",
      dataType: "float32",
      shape: [1, rows],
    });
    const threads = options.threads;
    const probe = new ReadBandwidthProbe({
      bytes: n * 4,
      sum: await createSession(sum.build(), { name: "read bandwidth (sum)", threads }),
      gemv: await createSession(gemv.build(), { name: "read bandwidth (gemv)", threads }),
      sumFeeds: { x: tensorF32(data, [n]) },
      gemvFeeds: {
        row: tensorF32(new Float32Array(cols).fill(1), [1, cols]),
        m: tensorF32(data, [rows, cols]),
      },
    });
    await checkSums(probe.#sum, probe.#sumFeeds, n);
    await checkSums(probe.#gemv, probe.#gemvFeeds, cols);
    return probe;
  }

  /** One reading of each probe: GB/s (1e9 bytes) of the faster, and of each. */
  async sample(): Promise<{ gbps: number; sumGbps: number; gemvGbps: number }> {
    let t = performance.now();
    await this.#sum.run(this.#sumFeeds);
    const sumGbps = this.bytes / ((performance.now() - t) * 1e6);
    t = performance.now();
    await this.#gemv.run(this.#gemvFeeds);
    const gemvGbps = this.bytes / ((performance.now() - t) * 1e6);
    return { gbps: Math.max(sumGbps, gemvGbps), sumGbps, gemvGbps };
  }

  /** Free both sessions. */
  async release(): Promise<void> {
    await this.#sum.release();
    await this.#gemv.release();
  }
}

/** Run once and check that every output element is `expected` (the inputs are all ones). */
async function checkSums(
  session: OrtSession,
  feeds: Record<string, OrtTensor>,
  expected: number,
): Promise<void> {
  const out = await session.run(feeds);
  for (const value of readF32(out.s)) {
    if (Math.abs(value - expected) > expected * 1e-3) {
      throw new Error(`${session.name} computed ${value}, expected ${expected}`);
    }
  }
}

/** Memory read bandwidth: the median of `repeats` samples of a {@linkcode ReadBandwidthProbe}. */
export async function measureReadBandwidth(
  bytes: number,
  options: { threads?: number; repeats?: number } = {},
): Promise<Ceiling> {
  const probe = await ReadBandwidthProbe.create(bytes, options);
  const samples = await samplesOf(probe, options.repeats ?? 5);
  const gbps = median(samples.map((x) => x.gbps));
  const sum = median(samples.map((x) => x.sumGbps));
  const gemv = median(samples.map((x) => x.gemvGbps));
  return {
    value: gbps,
    detail: `better of two streams over ${(probe.bytes / 2 ** 20).toFixed(0)} MiB, medians: ` +
      `row × matrix ${gemv.toFixed(1)}, ReduceSum ${sum.toFixed(1)} GB/s`,
  };
}

/** Copy bandwidth of TypedArray.set (read + write counted), for reference. */
export function measureCopyBandwidth(bytes: number, repeats = 5): Ceiling {
  const n = Math.floor(bytes / 4);
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  b.set(a);
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    b.set(a);
    times.push(performance.now() - t);
  }
  const ms = median(times);
  return {
    value: (2 * n * 4) / (ms * 1e6),
    detail: `Float32Array.set of ${(n * 4 / 2 ** 20).toFixed(0)} MiB: ${ms.toFixed(1)} ms`,
  };
}
