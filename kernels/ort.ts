/**
 * onnxruntime-node under Deno: lazy loading with the Float16Array workaround, CPU sessions with
 * evictbench's defaults, and small tensor helpers.
 *
 * Facts measured here (Deno 2.9.6, onnxruntime-node 1.30.0, CPU EP, 2-core AMD EPYC VM, 2 intra-op
 * threads; medians, noisy to ±30%):
 * - Inputs are not copied: the binding wraps the typed array's own bytes, and subarray views
 *   (byteOffset ≠ 0, shorter than their buffer) work. A ReduceSum over a 64 MB view input runs at
 *   ~32 GB/s, above `Float32Array.prototype.set` copy speed (~20 GB/s of bytes copied).
 * - Outputs ARE copied: the binding copies every output into a fresh JS ArrayBuffer, and fresh
 *   memory costs page faults — an Identity with a 64 MB output takes ~35–47 ms (≈1.5 GB/s), about
 *   what `new Float32Array(16M).set(src)` costs. Keep large tensors out of graph outputs.
 * - Pre-allocated outputs (`RunOptions.outputs`) are accepted and ORT writes into them, but the
 *   returned tensor is still a fresh copy, so they save little (64 MB Identity: ~41 vs ~47 ms).
 * - A trivial `run` costs ~7 µs (~9 µs including creating the input tensor).
 * - Decode attention as Gemm(q[2,128], K[32768,128], transB) → Softmax → MatMul(V[32768,128])
 *   takes ~1.6–2.8 ms, ~12–21 GB/s of K+V; a plain JS loop reading the same bytes reaches 6 GB/s
 *   (one accumulator) to 14 GB/s (four); a naive JS attention 2.4 GB/s.
 * - Weights as initializers vs graph inputs (Gemm [M,1024]×[3072,1024]ᵀ): same speed at M=2048
 *   (~255 GFLOP/s), initializer 10–35% faster for M ≤ 64 (prepacking).
 * - One session accepts many inputs with distinct symbolic first dims (ragged per-head K/V),
 *   including zero-row ones.
 *
 * @example
 * ```ts
 * import { createSession, readF32, tensorF32 } from "./ort.ts";
 *
 * const session = await createSession(modelBytes, { name: "layer0_pre" });
 * const out = await session.run({ x: tensorF32(x, [t, 64]) });
 * const q = readF32(out.q);
 * ```
 *
 * @module
 */

import type { InferenceSession, Tensor } from "onnxruntime-node";
import { InputError } from "../errors.ts";

/** The onnxruntime-node module namespace. */
export type OrtModule = typeof import("onnxruntime-node");

/** An ORT tensor (CPU data). */
export type OrtTensor = Tensor;

let ortModule: OrtModule | null = null;
let ortLoading: Promise<OrtModule> | null = null;

/**
 * Load onnxruntime-node once. Deno defines a global `Float16Array`, and onnxruntime-common would
 * then map "float16" tensors to it, which the native binding cannot read. So the global is hidden
 * while the module loads and one tensor of every supported type is built (that builds the
 * library's type map with float16 → `Uint16Array`); then the global is restored.
 *
 * @example
 * ```ts
 * const ort = await loadOrt();
 * console.log(ort.env.versions.common);
 * ```
 */
export function loadOrt(): Promise<OrtModule> {
  if (ortLoading === null) ortLoading = importOrt();
  return ortLoading;
}

async function importOrt(): Promise<OrtModule> {
  const g = globalThis as { Float16Array?: unknown };
  const saved = Object.getOwnPropertyDescriptor(g, "Float16Array");
  delete g.Float16Array;
  try {
    const ort = await import("onnxruntime-node");
    new ort.Tensor("float32", new Float32Array(1), [1]);
    new ort.Tensor("float16", new Uint16Array(1), [1]);
    new ort.Tensor("int64", new BigInt64Array(1), [1]);
    new ort.Tensor("int32", new Int32Array(1), [1]);
    new ort.Tensor("uint8", new Uint8Array(1), [1]);
    new ort.Tensor("bool", new Uint8Array(1), [1]);
    ortModule = ort;
    return ort;
  } finally {
    if (saved !== undefined) Object.defineProperty(g, "Float16Array", saved);
  }
}

function ortLoaded(what: string): OrtModule {
  if (ortModule === null) {
    throw new Error(
      `${what}: onnxruntime is not loaded yet; await loadOrt() or createSession() first`,
    );
  }
  return ortModule;
}

/** Options for {@linkcode createSession}. */
export interface SessionOptions {
  /** Graph name used in error messages; default "graph". */
  name?: string;
  /** Intra-op threads; default `navigator.hardwareConcurrency`. */
  threads?: number;
  /** Enable ORT profiling; {@linkcode OrtSession.release} writes `<profile>_<date>.json`. */
  profile?: string;
}

/** Options for {@linkcode OrtSession.run}. */
export interface RunOptions {
  /** Output names to compute; default all outputs (ignored when `outputs` is given). */
  fetches?: string[];
  /**
   * Pre-allocated output tensors by name; ORT writes results into their memory (shape and type
   * must match exactly). Only these outputs are computed. The binding still returns a fresh copy
   * of each, so this saves little time (measured ~13% on a 64 MB output); it is useful when the
   * result must land in a particular buffer.
   */
  outputs?: Record<string, OrtTensor>;
}

/** A loaded ONNX graph on the CPU execution provider. */
export class OrtSession {
  /** Graph name used in error messages. */
  readonly name: string;
  readonly #session: InferenceSession;
  readonly #profiling: boolean;

  /** Wrap an ORT session; use {@linkcode createSession} instead of calling this. */
  constructor(session: InferenceSession, name: string, options: { profiling?: boolean } = {}) {
    this.#session = session;
    this.name = name;
    this.#profiling = options.profiling ?? false;
  }

  /** Graph input names, in graph order. */
  get inputNames(): readonly string[] {
    return this.#session.inputNames;
  }

  /** Graph output names, in graph order. */
  get outputNames(): readonly string[] {
    return this.#session.outputNames;
  }

  /**
   * Run the graph. Errors name the graph. The binding runs synchronously inside a
   * `setImmediate` callback, so `await` gives no parallelism between sessions. Inputs are read in
   * place; outputs come back as fresh copies (see the module notes).
   *
   * @example
   * ```ts
   * const { y } = await session.run({ x: tensorF32(x, [4, 8]) });
   * const out = tensorF32(new Float32Array(32), [4, 8]);
   * await session.run({ x: tensorF32(x, [4, 8]) }, { outputs: { y: out } }); // fills `out`
   * ```
   */
  async run(
    feeds: Record<string, OrtTensor>,
    options: RunOptions = {},
  ): Promise<Record<string, OrtTensor>> {
    try {
      if (options.outputs !== undefined) {
        return await this.#session.run(feeds, options.outputs);
      }
      if (options.fetches !== undefined) return await this.#session.run(feeds, options.fetches);
      return await this.#session.run(feeds);
    } catch (error) {
      throw new Error(`onnxruntime run of graph "${this.name}" failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  /**
   * Release the native session; the object must not be used afterwards. With profiling on, this
   * first writes the profile (`<profile>_<date>.json`).
   */
  async release(): Promise<void> {
    if (this.#profiling) this.#session.endProfiling();
    await this.#session.release();
  }
}

/**
 * Create a CPU session from serialized ONNX bytes with evictbench's defaults: intra-op threads =
 * `navigator.hardwareConcurrency`, one inter-op thread, sequential execution, all graph
 * optimizations, threads that spin within a run and stop spinning when it ends,
 * log severity 3 (errors only). A graph that ORT rejects raises an Error naming the graph.
 *
 * @example
 * ```ts
 * const session = await createSession(g.build(), { name: "layer0_pre", threads: 4 });
 * ```
 */
export async function createSession(
  model: Uint8Array,
  options: SessionOptions = {},
): Promise<OrtSession> {
  const name = options.name ?? "graph";
  const threads = options.threads ?? navigator.hardwareConcurrency;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new InputError(
      `createSession "${name}": threads must be a positive integer, got ${threads}`,
    );
  }
  const ort = await loadOrt();
  const sessionOptions: InferenceSession.SessionOptions = {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    // Threads spin between the nodes of one run and sleep when it ends: each session has its own
    // pool, and a pool left spinning steals the two cores from the next session's work (whole
    // decode steps 8× slower here). Against pools that always sleep, a decode step of the
    // Qwen3-0.6B-shaped benchmark model took 0.90–0.94× the time at 512 and 2048 context
    // (alternating steps of two copies of the model in one process) and 0.99–1.01× at 64;
    // prefill moved within the noise (0.96–1.05×).
    extra: { session: { force_spinning_stop: "1", intra_op: { allow_spinning: "1" } } },
  };
  if (options.profile !== undefined) {
    sessionOptions.enableProfiling = true;
    sessionOptions.profileFilePrefix = options.profile;
  }
  let session: InferenceSession;
  try {
    session = await ort.InferenceSession.create(model, sessionOptions);
  } catch (error) {
    throw new Error(`onnxruntime rejected graph "${name}": ${messageOf(error)}`, { cause: error });
  }
  return new OrtSession(session, name, { profiling: options.profile !== undefined });
}

/**
 * A float32 ORT tensor over `data` (no copy; a subarray view is fine). Needs ORT loaded.
 *
 * @example
 * ```ts
 * const x = tensorF32(new Float32Array(6), [2, 3]);
 * ```
 */
export function tensorF32(data: Float32Array, dims: readonly number[]): OrtTensor {
  return makeTensor("float32", data, dims);
}

/**
 * An int64 ORT tensor; plain numbers are converted into a new `BigInt64Array`. Needs ORT loaded.
 *
 * @example
 * ```ts
 * const positions = tensorI64([0, 1, 2], [3]);
 * ```
 */
export function tensorI64(
  data: BigInt64Array | readonly number[],
  dims: readonly number[],
): OrtTensor {
  const values = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (v) => BigInt(v));
  return makeTensor("int64", values, dims);
}

/**
 * An int32 ORT tensor; plain numbers are converted into a new `Int32Array`. Needs ORT loaded.
 *
 * @example
 * ```ts
 * const lengths = tensorI32([5, 9], [2]);
 * ```
 */
export function tensorI32(
  data: Int32Array | readonly number[],
  dims: readonly number[],
): OrtTensor {
  return makeTensor("int32", data instanceof Int32Array ? data : Int32Array.from(data), dims);
}

/**
 * A float16 ORT tensor over IEEE half bit patterns in `data` (no copy). Needs ORT loaded.
 *
 * @example
 * ```ts
 * const h = tensorF16(new Uint16Array([0x3c00]), [1]); // 1.0
 * ```
 */
export function tensorF16(data: Uint16Array, dims: readonly number[]): OrtTensor {
  return makeTensor("float16", data, dims);
}

function makeTensor(
  type: "float32" | "int64" | "int32" | "float16",
  data: Float32Array | BigInt64Array | Int32Array | Uint16Array,
  dims: readonly number[],
): OrtTensor {
  const ort = ortLoaded(`tensor of type ${type}`);
  let count = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) {
      throw new InputError(
        `${type} tensor: dims [${dims.join(", ")}] must be non-negative integers`,
      );
    }
    count *= d;
  }
  if (count !== data.length) {
    throw new InputError(
      `${type} tensor: dims [${dims.join(", ")}] hold ${count} elements, data has ${data.length}`,
    );
  }
  return new ort.Tensor(type, data, dims);
}

/**
 * The elements of a float32 tensor as a `Float32Array` (the tensor's own memory, no copy), or a
 * float16 tensor converted to a new `Float32Array`.
 *
 * @example
 * ```ts
 * const logits = readF32(out.logits);
 * ```
 */
export function readF32(tensor: OrtTensor): Float32Array {
  if (tensor.type === "float32") return tensor.data as Float32Array;
  if (tensor.type === "float16") return halfBitsToF32(tensor.data as Uint16Array);
  throw new InputError(`readF32: expected a float32 or float16 tensor, got ${tensor.type}`);
}

/**
 * Convert IEEE half bit patterns to float32 values.
 *
 * @example
 * ```ts
 * halfBitsToF32(new Uint16Array([0x3c00, 0xc000])); // Float32Array [1, -2]
 * ```
 */
export function halfBitsToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 31) out[i] = frac === 0 ? sign * Infinity : NaN;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
