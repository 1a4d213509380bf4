/**
 * Ceilings measured in the same run as the figures they judge: the best dense f32 GEMM rate
 * onnxruntime reaches on this machine, and the memory read bandwidth.
 *
 * @module
 */

import { GraphBuilder, tensorDataF32 } from "../kernels/onnx/graph.ts";
import { createSession, readF32, tensorF32 } from "../kernels/ort.ts";

/** A measured rate with how it was obtained. */
export interface Ceiling {
  /** GFLOP/s for compute, GB/s (1e9 bytes) for bandwidth. */
  value: number;
  detail: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeMs(fn: () => Promise<unknown>, repeats: number): Promise<number> {
  await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return median(times);
}

/**
 * The best f32 GEMM rate over shapes like the model's, weight as an initializer (as the engine
 * builds them), [m, k] × [n, k]ᵀ.
 */
export async function measureGemmPeak(
  shapes: [number, number, number][],
  options: { threads?: number; repeats?: number } = {},
): Promise<Ceiling> {
  let best: Ceiling = { value: 0, detail: "" };
  for (const [m, k, n] of shapes) {
    const g = new GraphBuilder(`gemm_${m}x${k}x${n}`);
    const x = g.input("x", "float32", [m, k]);
    const w = new Float32Array(n * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    g.output(g.gemm(x, g.initializer("w", tensorDataF32(w, [n, k]))), {
      name: "y",
      dataType: "float32",
      shape: [m, n],
    });
    const session = await createSession(g.build(), { name: "gemm peak", threads: options.threads });
    const input = tensorF32(new Float32Array(m * k).fill(0.25), [m, k]);
    const ms = await timeMs(() => session.run({ x: input }), options.repeats ?? 5);
    const gflops = (2 * m * k * n) / (ms * 1e6);
    if (gflops > best.value) {
      best = { value: gflops, detail: `Gemm ${m}×${k}×${n}: ${ms.toFixed(1)} ms` };
    }
    await session.release();
  }
  return best;
}

/** Memory read bandwidth: ReduceSum over a buffer far larger than the caches. */
export async function measureReadBandwidth(
  bytes: number,
  options: { threads?: number; repeats?: number } = {},
): Promise<Ceiling> {
  const n = Math.floor(bytes / 4);
  const g = new GraphBuilder("read_bandwidth");
  const x = g.input("x", "float32", [n]);
  g.output(g.reduce("ReduceSum", x, [0], { keepdims: false }), {
    name: "s",
    dataType: "float32",
    shape: [],
  });
  const session = await createSession(g.build(), {
    name: "read bandwidth",
    threads: options.threads,
  });
  const data = new Float32Array(n).fill(1);
  const input = tensorF32(data, [n]);
  let checked = false;
  const ms = await timeMs(async () => {
    const out = await session.run({ x: input });
    if (!checked) {
      checked = true;
      const s = readF32(out.s)[0];
      if (Math.abs(s - n) > n * 1e-3) {
        throw new Error(`bandwidth probe summed to ${s}, expected ${n}`);
      }
    }
  }, options.repeats ?? 5);
  await session.release();
  const gbs = (n * 4) / (ms * 1e6);
  return {
    value: gbs,
    detail: `ReduceSum over ${(n * 4 / 2 ** 20).toFixed(0)} MiB: ${ms.toFixed(1)} ms`,
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
