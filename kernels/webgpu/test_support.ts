/**
 * Helpers for GPU tests: one device per (process, maxBinding), and the rule for machines
 * without an adapter: the tests are registered as ignored and ONE line says why, except
 * under CI=true, where a missing adapter fails the run.
 *
 * @module
 */

import { type AdapterChoice, findAdapter, GpuContext } from "./device.ts";

/** The adapter the GPU tests use, or null. */
export const testAdapter: AdapterChoice | null = await findAdapter();

const underCi = (Deno.env.get("CI") ?? "").toLowerCase() === "true";
/**
 * Set once the notice is printed. Test modules run in separate isolates of one process, so
 * the flag lives in the process environment rather than in a module variable.
 */
const NOTICE_FLAG = "EVICTBENCH_GPU_SKIP_NOTICE_PRINTED";

if (testAdapter === null && !underCi && Deno.env.get(NOTICE_FLAG) !== String(Deno.pid)) {
  Deno.env.set(NOTICE_FLAG, String(Deno.pid));
  console.log(
    "GPU tests skipped: no WebGPU adapter (install mesa-vulkan-drivers for llvmpipe; CI=true makes this a failure)",
  );
}

const contexts = new Map<number, Promise<GpuContext>>();

/** A context on the test adapter, shared by every test asking for the same maxBinding. */
export function testContext(maxBinding = 0): Promise<GpuContext> {
  let context = contexts.get(maxBinding);
  if (context === undefined) {
    context = GpuContext.open({
      adapter: testAdapter!,
      maxBinding: maxBinding > 0 ? maxBinding : undefined,
    });
    contexts.set(maxBinding, context);
  }
  return context;
}

/** Options of {@linkcode gpuTest}. */
export interface GpuTestOptions {
  /** Force tensors larger than this many bytes to split across bindings. */
  maxBinding?: number;
}

/**
 * Register a test that needs a GPU: ignored without an adapter, failing under CI=true.
 *
 * @example
 * ```ts
 * gpuTest("matmul matches the CPU", async (gpu) => { … });
 * ```
 */
export function gpuTest(
  name: string,
  fn: (gpu: GpuContext, t: Deno.TestContext) => Promise<void>,
  options: GpuTestOptions = {},
): void {
  Deno.test({
    name,
    ignore: testAdapter === null && !underCi,
    // The device keeps its own resources and async work alive between tests.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      if (testAdapter === null) {
        throw new Error("CI=true and no WebGPU adapter: the GPU tests cannot run");
      }
      await fn(await testContext(options.maxBinding ?? 0), t);
    },
  });
}

/** `count` uniform floats in [−scale, scale) from a seeded stream. */
export function randomArray(next: () => number, count: number, scale = 1): Float32Array {
  return Float32Array.from({ length: count }, () => (next() * 2 - 1) * scale);
}

/**
 * Worst error of `actual` against `expected`, relative to the tensor's scale: max over i of
 * |aᵢ − eᵢ| / max(|eᵢ|, floor · max|e|). NaN counts as Infinity.
 */
export function relativeError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  floor = 1e-2,
): number {
  if (actual.length !== expected.length) {
    throw new Error(`length ${actual.length} vs ${expected.length}`);
  }
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) /
      Math.max(Math.abs(expected[i]), floor * scale, 1e-30);
    if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
  }
  return worst;
}
