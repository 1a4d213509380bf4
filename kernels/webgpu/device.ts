/**
 * The WebGPU device layer: adapter discovery, a {@linkcode GpuContext} (device, limits, kernel
 * cache, buffer accounting) and the {@linkcode Recorder} that batches a whole unit of work
 * (a forward pass, an eviction) into one command buffer with one optional awaited readback.
 *
 * Conventions every kernel follows:
 * - binding 0 is a uniform struct of scalars (`p`), written into a shared parameter arena and
 *   bound with a dynamic offset, so bind groups are cheap and one command buffer can hold
 *   hundreds of dispatches with different parameters;
 * - bindings 1.. are whole storage buffers; offsets travel as element offsets in `p`, so no
 *   binding ever needs an aligned sub-range;
 * - a 1D grid of more than 65535 workgroups is folded into (x, y); kernels compute the linear
 *   workgroup index as `wid.x + wid.y * nwg.x`.
 *
 * @module
 */

/** Bytes of one parameter slot (the usual minUniformBufferOffsetAlignment). */
const PARAM_SLOT = 256;
/** Slots per parameter page (one uniform buffer of 64 KiB). */
const PAGE_SLOTS = 256;
/** Largest number of workgroups along one grid dimension. */
export const MAX_GRID = 65535;

/** A scalar field of a kernel's parameter struct. */
export type ParamType = "u32" | "i32" | "f32";

/** How a kernel uses a storage binding. */
export type Access = "read" | "write";

/**
 * A compute kernel: its parameter struct, its storage bindings and the WGSL after the
 * generated declarations (which must define `fn main`).
 */
export interface KernelDef {
  /** Unique name of this variant (the cache key). */
  name: string;
  params: readonly (readonly [string, ParamType])[];
  /** [name, access, WGSL element type], bound at 1, 2, … in this order. */
  bindings: readonly (readonly [string, Access, string])[];
  /** Workgroup size as WGSL writes it, e.g. "64" or "16, 16". */
  workgroupSize: string;
  body: string;
  /** Whether the WGSL needs `enable f16;`. */
  f16?: boolean;
}

/** A compiled kernel. */
export interface Kernel {
  readonly def: KernelDef;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** The adapter a run would use, as found by {@linkcode findAdapter}. */
export interface AdapterChoice {
  adapter: GPUAdapter;
  /** Human-readable name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** A software or otherwise fallback adapter (Mesa's llvmpipe reports itself as one). */
  fallback: boolean;
}

/**
 * The best adapter `navigator.gpu` offers, or null when there is none (no WebGPU, no driver).
 *
 * @example
 * ```ts
 * const choice = await findAdapter();
 * if (choice !== null) console.log(choice.description, choice.fallback);
 * ```
 */
export async function findAdapter(): Promise<AdapterChoice | null> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (gpu === undefined) return null;
  // Mesa's Vulkan loader complains on stderr at first use when XDG_RUNTIME_DIR is unset; a CPU
  // run that merely probed for an adapter must not print that.
  if (Deno.env.get("XDG_RUNTIME_DIR") === undefined) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
  if (adapter === null) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = adapter as GPUAdapter & { isFallbackAdapter?: boolean };
  const fallback = info.isFallbackAdapter === true || legacy.isFallbackAdapter === true;
  const description = info.description || info.device || info.vendor || "unnamed adapter";
  return { adapter, description, fallback };
}

/** Options of {@linkcode GpuContext.open}. */
export interface GpuContextOptions {
  /** Use this adapter instead of finding one. */
  adapter?: AdapterChoice;
  /**
   * Largest storage binding in bytes (default: the adapter's maxStorageBufferBindingSize).
   * Tests set it small to force tensors to split across bindings.
   */
  maxBinding?: number;
  /** Use shader-f16 when the adapter has it (default true). */
  f16?: boolean;
}

/** A buffer's identity for bind group caching. */
const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;

function bufferId(buffer: GPUBuffer): number {
  let id = bufferIds.get(buffer);
  if (id === undefined) {
    id = nextBufferId++;
    bufferIds.set(buffer, id);
  }
  return id;
}

/**
 * One WebGPU device and what every kernel shares: limits, compiled kernels, the parameter
 * arena, a dummy buffer for empty bindings and an account of the bytes allocated.
 *
 * @example
 * ```ts
 * const gpu = await GpuContext.open();
 * const rec = gpu.recorder();
 * // … rec.dispatch(…) …
 * await rec.finish();
 * gpu.destroy();
 * ```
 */
export class GpuContext {
  readonly device: GPUDevice;
  readonly adapterName: string;
  readonly fallback: boolean;
  /** Whether kernels may use f16 storage (the adapter has shader-f16 and it was not refused). */
  readonly f16: boolean;
  /** Whether timestamp queries are available. */
  readonly timestamps: boolean;
  /** Largest storage binding in bytes this context allows. */
  readonly maxBinding: number;
  /** Largest single buffer in bytes. */
  readonly maxBuffer: number;
  /** A 16-byte storage buffer bound wherever a kernel's optional input is absent. */
  readonly dummy: GPUBuffer;
  /** Another, for absent outputs (one buffer may not be read-only and writable at once). */
  readonly dummyOut: GPUBuffer;
  readonly #kernels = new Map<string, Kernel>();
  readonly #groups = new Map<string, GPUBindGroup>();
  readonly #pages: GPUBuffer[] = [];
  readonly #staging = new Map<number, GPUBuffer[]>();
  readonly #scratch = new Map<string, GPUBuffer>();
  #bytesAllocated = 0;
  #sizes = new WeakMap<GPUBuffer, number>();
  #error: string | null = null;
  #destroyed = false;

  private constructor(
    device: GPUDevice,
    choice: AdapterChoice,
    options: { f16: boolean; timestamps: boolean; maxBinding: number },
  ) {
    this.device = device;
    this.adapterName = choice.description;
    this.fallback = choice.fallback;
    this.f16 = options.f16;
    this.timestamps = options.timestamps;
    this.maxBinding = options.maxBinding;
    this.maxBuffer = device.limits.maxBufferSize;
    device.addEventListener("uncapturederror", (event) => {
      const message = (event as GPUUncapturedErrorEvent).error.message;
      if (this.#error === null) this.#error = message;
    });
    this.dummy = this.createBuffer(16, "dummy");
    this.dummyOut = this.createBuffer(16, "dummy output");
  }

  /** Open a device on the best adapter; throws when there is none. */
  static async open(options: GpuContextOptions = {}): Promise<GpuContext> {
    const choice = options.adapter ?? await findAdapter();
    if (choice === null) throw new Error("WebGPU: no adapter is available");
    const { adapter } = choice;
    const wanted: GPUFeatureName[] = [];
    const f16 = (options.f16 ?? true) && adapter.features.has("shader-f16");
    if (f16) wanted.push("shader-f16");
    const timestamps = adapter.features.has("timestamp-query");
    if (timestamps) wanted.push("timestamp-query");
    const limits = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: wanted,
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      },
    });
    const adapterMax = device.limits.maxStorageBufferBindingSize;
    const maxBinding = Math.min(options.maxBinding ?? adapterMax, adapterMax);
    if (!(maxBinding >= 256)) {
      throw new Error(`GpuContext: maxBinding must be at least 256 bytes, got ${maxBinding}`);
    }
    return new GpuContext(device, choice, { f16, timestamps, maxBinding });
  }

  /** Bytes of every buffer this context created and has not destroyed. */
  get bytesAllocated(): number {
    return this.#bytesAllocated;
  }

  /** A storage buffer (also a copy source and destination) of at least 4 bytes. */
  createBuffer(bytes: number, label: string): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > this.maxBuffer) {
      throw new Error(
        `WebGPU: ${label} needs ${size} bytes, above maxBufferSize ${this.maxBuffer}`,
      );
    }
    const buffer = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.#bytesAllocated += size;
    this.#sizes.set(buffer, size);
    return buffer;
  }

  /** A storage buffer holding `data` (f32, i32, u32 or f16 contents). */
  upload(data: ArrayBufferView, label: string): GPUBuffer {
    const buffer = this.createBuffer(data.byteLength, label);
    this.write(buffer, 0, data);
    return buffer;
  }

  /** Queue a write of `data` at byte `offset` (ordered before any later submit). */
  write(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    if (data.byteLength === 0) return;
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 === 0) {
      this.device.queue.writeBuffer(buffer, offset, bytes);
    } else {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      this.device.queue.writeBuffer(buffer, offset, padded);
    }
  }

  /** Free a buffer created here (submitted work that uses it still completes). */
  release(buffer: GPUBuffer | null): void {
    if (buffer === null || buffer === this.dummy || buffer === this.dummyOut) return;
    const size = this.#sizes.get(buffer);
    if (size === undefined) return;
    this.#sizes.delete(buffer);
    this.#bytesAllocated -= size;
    buffer.destroy();
  }

  /**
   * The scratch buffer `name`, at least `bytes` long: shared by every user of this context
   * within one batch at a time. Growing releases the old buffer after `rec` is submitted.
   */
  scratch(rec: Recorder, name: string, bytes: number): GPUBuffer {
    const held = this.#scratch.get(name);
    if (held !== undefined && held.size >= bytes) return held;
    const size = Math.max(bytes, Math.ceil((held?.size ?? 0) * 1.5), 256);
    const buffer = this.createBuffer(size, `scratch ${name}`);
    if (held !== undefined) rec.releaseAfter(held);
    this.#scratch.set(name, buffer);
    return buffer;
  }

  /** The compiled kernel of `def` (compiled once per name). */
  kernel(def: KernelDef): Kernel {
    const cached = this.#kernels.get(def.name);
    if (cached !== undefined) return cached;
    const code = kernelSource(def);
    const module = this.device.createShaderModule({ label: def.name, code });
    const entries: GPUBindGroupLayoutEntry[] = [{
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform", hasDynamicOffset: true },
    }];
    def.bindings.forEach(([, access], i) => {
      entries.push({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: access === "read" ? "read-only-storage" : "storage" },
      });
    });
    const layout = this.device.createBindGroupLayout({ label: def.name, entries });
    const pipeline = this.device.createComputePipeline({
      label: def.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const kernel = { def, pipeline, layout };
    this.#kernels.set(def.name, kernel);
    return kernel;
  }

  /** A recorder for one batch of work. */
  recorder(options: { timed?: boolean } = {}): Recorder {
    return new Recorder(this, options.timed === true && this.timestamps);
  }

  /** Wait until everything submitted so far has run; throws on a device error raised by then. */
  async sync(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    const error = this.takeError();
    if (error !== null) throw new Error(`WebGPU: ${error}`);
  }

  /** The first uncaptured device error since the last call, if any (then cleared). */
  takeError(): string | null {
    const error = this.#error;
    this.#error = null;
    return error;
  }

  /** Destroy the device and everything on it. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#groups.clear();
    this.device.destroy();
  }

  /** @internal Parameter page `i` (created on first use). */
  paramPage(i: number): GPUBuffer {
    while (this.#pages.length <= i) {
      this.#pages.push(this.device.createBuffer({
        label: `params${this.#pages.length}`,
        size: PARAM_SLOT * PAGE_SLOTS,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      }));
    }
    return this.#pages[i];
  }

  /** @internal A bind group of `kernel` over `page` and `buffers`, cached by identity. */
  bindGroup(kernel: Kernel, page: GPUBuffer, buffers: GPUBuffer[]): GPUBindGroup {
    let key = `${kernel.def.name}|${bufferId(page)}`;
    for (const b of buffers) key += `,${bufferId(b)}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      // Groups of destroyed buffers are never hit again; drop everything now and then.
      if (this.#groups.size > 4096) this.#groups.clear();
      const entries: GPUBindGroupEntry[] = [{
        binding: 0,
        resource: { buffer: page, offset: 0, size: PARAM_SLOT },
      }];
      buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
      group = this.device.createBindGroup({ layout: kernel.layout, entries });
      this.#groups.set(key, group);
    }
    return group;
  }

  /** @internal A mappable staging buffer of exactly `bytes` (pooled by size). */
  takeStaging(bytes: number): GPUBuffer {
    const pool = this.#staging.get(bytes);
    const reused = pool?.pop();
    if (reused !== undefined) return reused;
    return this.device.createBuffer({
      label: "staging",
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** @internal Return a staging buffer to the pool (a few per size are kept). */
  giveStaging(buffer: GPUBuffer): void {
    let pool = this.#staging.get(buffer.size);
    if (pool === undefined) {
      pool = [];
      this.#staging.set(buffer.size, pool);
    }
    if (pool.length < 8) pool.push(buffer);
    else buffer.destroy();
  }
}

/** WGSL of a kernel: the generated parameter struct and bindings, then its body. */
export function kernelSource(def: KernelDef): string {
  const lines: string[] = [];
  if (def.f16) lines.push("enable f16;");
  const fields = def.params.length > 0 ? def.params : [["_unused", "u32"] as const];
  lines.push(`struct Params { ${fields.map(([n, t]) => `${n}: ${t}`).join(", ")} }`);
  lines.push("@group(0) @binding(0) var<uniform> p: Params;");
  def.bindings.forEach(([name, access, type], i) => {
    const mode = access === "read" ? "read" : "read_write";
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${mode}> ${name}: array<${type}>;`);
  });
  lines.push(def.body.replace("@compute", `@compute @workgroup_size(${def.workgroupSize})`));
  return lines.join("\n");
}

/** Split `count` workgroups into an (x, y) grid within the per-dimension limit. */
export function grid1d(count: number): [number, number] {
  if (count <= MAX_GRID) return [Math.max(count, 0), 1];
  const y = Math.ceil(count / MAX_GRID);
  return [Math.ceil(count / y), y];
}

/** A pending readback: its bytes once {@linkcode Recorder.finish} has resolved. */
export interface Readback {
  readonly bytes: number;
  /** The data as an ArrayBuffer (valid after finish()). */
  data(): ArrayBuffer;
}

interface PendingRead {
  staging: GPUBuffer;
  bytes: number;
  result: ArrayBuffer | null;
}

/**
 * Records one batch of work: dispatches, copies and reads, with a parameter slot per
 * dispatch. `submit()` sends it without waiting; `finish()` sends it and awaits every read
 * with a single synchronisation (all staging buffers map together).
 */
export class Recorder {
  readonly gpu: GpuContext;
  readonly #encoder: GPUCommandEncoder;
  #pass: GPUComputePassEncoder | null = null;
  /** Host copy of the parameter pages this batch fills, one ArrayBuffer per page. */
  readonly #pages: ArrayBuffer[] = [];
  #slots = 0;
  readonly #reads: PendingRead[] = [];
  readonly #afterSubmit: GPUBuffer[] = [];
  #query: { set: GPUQuerySet; resolve: GPUBuffer; read: PendingRead } | null = null;
  #submitted = false;
  /** Dispatches recorded so far. */
  dispatches = 0;

  constructor(gpu: GpuContext, timed: boolean) {
    this.gpu = gpu;
    this.#encoder = gpu.device.createCommandEncoder();
    if (timed) {
      const set = gpu.device.createQuerySet({ type: "timestamp", count: 2 });
      const resolve = gpu.device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const read = { staging: gpu.takeStaging(16), bytes: 16, result: null };
      this.#query = { set, resolve, read };
      // Empty passes carry the stamps, so they bracket everything recorded in between.
      this.#encoder.beginComputePass({
        timestampWrites: { querySet: set, beginningOfPassWriteIndex: 0 },
      }).end();
    }
  }

  /** Dispatch `kernel` with `params` over `grid` workgroups; buffers by binding name. */
  dispatch(
    kernel: Kernel,
    params: Record<string, number>,
    buffers: Record<string, GPUBuffer>,
    grid: readonly [number, number?, number?],
  ): void {
    const [x, y = 1, z = 1] = grid;
    if (x === 0 || y === 0 || z === 0) return;
    if (x > MAX_GRID || y > MAX_GRID || z > MAX_GRID) {
      throw new Error(`${kernel.def.name}: grid ${x}×${y}×${z} exceeds ${MAX_GRID} per dimension`);
    }
    const slot = this.#slots++;
    const pageIndex = Math.floor(slot / PAGE_SLOTS);
    if (pageIndex === this.#pages.length) {
      this.#pages.push(new ArrayBuffer(PARAM_SLOT * PAGE_SLOTS));
    }
    const offset = (slot % PAGE_SLOTS) * PARAM_SLOT;
    const view = new DataView(this.#pages[pageIndex], offset, PARAM_SLOT);
    kernel.def.params.forEach(([name, type], i) => {
      const value = params[name];
      if (value === undefined || Number.isNaN(value)) {
        throw new Error(`${kernel.def.name}: parameter ${name} is ${value}`);
      }
      if (type === "f32") view.setFloat32(i * 4, value, true);
      else if (type === "i32") view.setInt32(i * 4, value, true);
      else view.setUint32(i * 4, value, true);
    });
    const list = kernel.def.bindings.map(([name]) => {
      const buffer = buffers[name];
      if (buffer === undefined) throw new Error(`${kernel.def.name}: no buffer for ${name}`);
      return buffer;
    });
    const page = this.gpu.paramPage(pageIndex);
    const pass = this.#computePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, this.gpu.bindGroup(kernel, page, list), [offset]);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
  }

  /** Copy `bytes` from `src` at `srcOffset` to `dst` at `dstOffset` (all multiples of 4). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.#endPass();
    this.#encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Read `bytes` of `src` from `offset` back to the host when the batch finishes. */
  read(src: GPUBuffer, offset: number, bytes: number): Readback {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const pending: PendingRead = { staging: this.gpu.takeStaging(size), bytes, result: null };
    this.copy(src, offset, pending.staging, 0, size);
    this.#reads.push(pending);
    return {
      bytes,
      data(): ArrayBuffer {
        if (pending.result === null) throw new Error("Readback: the batch has not finished");
        return pending.result;
      },
    };
  }

  /** Release `buffer` once this batch is submitted (it may still be used by recorded work). */
  releaseAfter(buffer: GPUBuffer | null): void {
    if (buffer !== null) this.#afterSubmit.push(buffer);
  }

  /** Send the batch without waiting. Reads need {@linkcode Recorder.finish}. */
  submit(): void {
    if (this.#submitted) throw new Error("Recorder: already submitted");
    this.#submitted = true;
    this.#endPass();
    if (this.#query !== null) {
      this.#encoder.beginComputePass({
        timestampWrites: { querySet: this.#query.set, endOfPassWriteIndex: 1 },
      }).end();
      this.#encoder.resolveQuerySet(this.#query.set, 0, 2, this.#query.resolve, 0);
      this.#encoder.copyBufferToBuffer(this.#query.resolve, 0, this.#query.read.staging, 0, 16);
    }
    const queue = this.gpu.device.queue;
    this.#pages.forEach((data, page) => {
      const used = Math.min(PAGE_SLOTS, this.#slots - page * PAGE_SLOTS);
      queue.writeBuffer(this.gpu.paramPage(page), 0, data, 0, used * PARAM_SLOT);
    });
    queue.submit([this.#encoder.finish()]);
    for (const buffer of this.#afterSubmit) this.gpu.release(buffer);
  }

  /**
   * Send the batch (unless sent) and wait for every read with one synchronisation: all
   * staging buffers map together. Returns the GPU time in ms when the recorder was timed,
   * else null. Throws on a device error raised so far.
   */
  async finish(): Promise<number | null> {
    if (!this.#submitted) this.submit();
    const reads = [...this.#reads];
    if (this.#query !== null) reads.push(this.#query.read);
    if (reads.length > 0) {
      await Promise.all(reads.map((r) => r.staging.mapAsync(GPUMapMode.READ, 0, r.staging.size)));
      for (const r of reads) {
        r.result = r.staging.getMappedRange(0, r.staging.size).slice(0, r.bytes);
        r.staging.unmap();
        this.gpu.giveStaging(r.staging);
      }
    }
    const error = this.gpu.takeError();
    if (error !== null) throw new Error(`WebGPU: ${error}`);
    if (this.#query === null) return null;
    const stamps = new BigUint64Array(this.#query.read.result!);
    this.#query.set.destroy();
    this.#query.resolve.destroy();
    return Number(stamps[1] - stamps[0]) / 1e6;
  }

  #computePass(): GPUComputePassEncoder {
    if (this.#pass === null) this.#pass = this.#encoder.beginComputePass();
    return this.#pass;
  }

  #endPass(): void {
    if (this.#pass === null) return;
    this.#pass.end();
    this.#pass = null;
  }
}
