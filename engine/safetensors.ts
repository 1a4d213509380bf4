/**
 * Reading and writing the safetensors format: an 8-byte little-endian header length N, N bytes
 * of JSON describing each tensor (dtype, shape, byte range of the data section), then the data.
 *
 * The reader validates the whole header up front and reads each tensor lazily, on demand, into a
 * fresh buffer (Deno has no mmap). {@linkcode WeightStore} opens a Hugging Face model directory
 * with one `model.safetensors` or a sharded checkpoint with `model.safetensors.index.json`.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { shortDigest } from "../digest.ts";

/** Every dtype the safetensors format defines with a whole number of bytes per element. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
});

/** A dtype name from {@linkcode SAFETENSORS_DTYPES}. */
export type SafetensorsDtype = string;

/** The dtypes {@linkcode SafetensorsFile.readF32} can widen to f32. */
export const FLOAT_DTYPES: readonly string[] = ["F32", "F16", "BF16"];

/** Largest header the reader accepts (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  /** Tensor name as written in the header. */
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range inside the data section (relative to the first byte after the header). */
  begin: number;
  end: number;
}

/** Options for {@linkcode openSafetensors}. */
export interface OpenSafetensorsOptions {
  /** How error messages name the file; defaults to the path as given. */
  label?: string;
}

/** The validated header of a safetensors file, as {@linkcode openSafetensors} reads it. */
export interface SafetensorsHeader {
  path: string;
  label: string;
  /** File size in bytes. */
  size: number;
  /** Absolute file offset of the data section (8 + header length). */
  dataStart: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

/** One validated, open safetensors file. Tensors are read on demand; call `close()` when done. */
export class SafetensorsFile {
  /** Path the file was opened from. */
  readonly path: string;
  /** Name used in error messages. */
  readonly label: string;
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** File size in bytes. */
  readonly size: number;
  /** Absolute file offset of the data section. */
  readonly dataStart: number;
  #file: Deno.FsFile;
  #tensors: Map<string, TensorInfo>;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** Use {@linkcode openSafetensors}; this constructor takes an already-validated header. */
  constructor(file: Deno.FsFile, header: SafetensorsHeader) {
    this.#file = file;
    this.path = header.path;
    this.label = header.label;
    this.size = header.size;
    this.dataStart = header.dataStart;
    this.metadata = Object.freeze({ ...header.metadata });
    this.#tensors = header.tensors;
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  /** Whether the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** Header entry of `name`, or undefined when absent. */
  info(name: string): TensorInfo | undefined {
    const info = this.#tensors.get(name);
    return info === undefined ? undefined : { ...info, shape: [...info.shape] };
  }

  /** The raw bytes of tensor `name` in a fresh, 8-byte-aligned buffer. */
  readBytes(name: string): Promise<Uint8Array> {
    const info = this.#require(name);
    const task = this.#queue.then(() => this.#readRange(info));
    this.#queue = task.catch(() => undefined);
    return task;
  }

  /**
   * Tensor `name` widened to f32: F32 as stored, F16 through the native Float16Array, BF16 by
   * placing its 16 bits in the high half of an f32. Any other dtype is an InputError.
   */
  async readF32(name: string): Promise<Float32Array> {
    const info = this.#require(name);
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new InputError(
        `${this.label}: tensor ${name} has dtype ${info.dtype}; expected a float tensor (F32, F16 or BF16)`,
      );
    }
    const bytes = await this.readBytes(name);
    return bytesToF32(bytes, info.dtype);
  }

  /** Close the file handle. Reads after closing fail. */
  close(): void {
    if (!this.#closed) {
      this.#closed = true;
      this.#file.close();
    }
  }

  #require(name: string): TensorInfo {
    const info = this.#tensors.get(name);
    if (info === undefined) throw new InputError(`${this.label}: no tensor named ${name}`);
    if (this.#closed) throw new Error(`${this.label}: file is closed`);
    return info;
  }

  async #readRange(info: TensorInfo): Promise<Uint8Array> {
    const length = info.end - info.begin;
    // Round the allocation up so any typed-array view of the buffer is aligned.
    const buffer = new ArrayBuffer(Math.ceil(length / 8) * 8);
    const out = new Uint8Array(buffer, 0, length);
    await this.#file.seek(this.dataStart + info.begin, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const n = await this.#file.read(out.subarray(filled));
      if (n === null || n === 0) {
        throw new InputError(
          `${this.label}: file ended while reading tensor ${info.name} (got ${filled} of ${length} bytes)`,
        );
      }
      filled += n;
    }
    return out;
  }
}

/** Widen raw little-endian F32/F16/BF16 bytes to a Float32Array (F32 reuses the buffer when aligned). */
export function bytesToF32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (dtype === "F32") {
    return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  }
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
  if (dtype === "F16") return f16BitsToF32(halves);
  if (dtype === "BF16") return bf16BitsToF32(halves);
  throw new RangeError(`bytesToF32: dtype ${dtype} is not a float dtype`);
}

/** Widen IEEE half-precision bit patterns to f32. */
export function f16BitsToF32(bits: Uint16Array): Float32Array {
  const halves = new Float16Array(bits.buffer, bits.byteOffset, bits.length);
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halves[i];
  return out;
}

/** Widen bfloat16 bit patterns to f32 (exact: bf16 is the top half of an f32). */
export function bf16BitsToF32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/** Round f32 values to bfloat16 bit patterns, round-to-nearest-even; NaN stays a quiet NaN. */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const w = words[i];
    if ((w & 0x7f800000) === 0x7f800000 && (w & 0x007fffff) !== 0) {
      out[i] = (w >>> 16) | 0x0040;
      continue;
    }
    const lsb = (w >>> 16) & 1;
    out[i] = ((w + 0x7fff + lsb) >>> 16) & 0xffff;
  }
  return out;
}

/** Round f32 values to IEEE half-precision bit patterns (round-to-nearest-even, via Float16Array). */
export function f32ToF16(values: Float32Array): Uint16Array {
  const halves = new Float16Array(values);
  return new Uint16Array(halves.buffer, halves.byteOffset, halves.length);
}

/** Round one number to bf16 precision and return it as a number. */
export function roundToBf16(value: number): number {
  return bf16BitsToF32(f32ToBf16(new Float32Array([value])))[0];
}

/** Round one number to IEEE half precision and return it as a number. */
export function roundToF16(value: number): number {
  return new Float16Array([value])[0];
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Number of elements of `shape` (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Format a shape as `[a,b,c]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/**
 * Open and validate a safetensors file. Every malformed header (truncation, bad JSON, unknown
 * dtypes, inconsistent or overlapping byte ranges) is a one-line {@linkcode InputError} naming
 * the file.
 */
export async function openSafetensors(
  path: string,
  options: OpenSafetensorsOptions = {},
): Promise<SafetensorsFile> {
  const label = options.label ?? path;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new InputError(`${label}: file not found`, { cause: error });
    }
    throw new InputError(`${label}: cannot open (${oneLine(error)})`, { cause: error });
  }
  try {
    if ((await file.stat()).isDirectory) {
      throw new InputError(`${label}: is a directory; expected a safetensors file`);
    }
    const header = await readHeader(file, { path, label });
    return new SafetensorsFile(file, header);
  } catch (error) {
    file.close();
    throw error;
  }
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}

async function readExactly(file: Deno.FsFile, out: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < out.length) {
    const n = await file.read(out.subarray(filled));
    if (n === null || n === 0) break;
    filled += n;
  }
  return filled;
}

async function readHeader(
  file: Deno.FsFile,
  where: { path: string; label: string },
): Promise<SafetensorsHeader> {
  const { path, label } = where;
  const size = (await file.stat()).size;
  if (size < 8) {
    throw new InputError(
      `${label}: file is ${size} bytes, too short for a safetensors header (needs at least 8)`,
    );
  }
  const lengthBytes = new Uint8Array(8);
  await readExactly(file, lengthBytes);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(size - 8)) {
    throw new InputError(
      `${label}: header length ${headerLength} runs past the end of the file (${size} bytes)`,
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) {
    throw new InputError(
      `${label}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  if (n === 0) throw new InputError(`${label}: header is empty; expected a JSON object`);
  const headerBytes = new Uint8Array(n);
  const got = await readExactly(file, headerBytes);
  if (got < n) {
    throw new InputError(`${label}: file ended inside the header (${got} of ${n} bytes)`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch (error) {
    throw new InputError(`${label}: header is not valid UTF-8`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${label}: header is not valid JSON (${oneLine(error)})`, {
      cause: error,
    });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    const kind = parsed === null ? "null" : Array.isArray(parsed) ? "an array" : typeof parsed;
    throw new InputError(`${label}: header must be a JSON object, got ${kind}`);
  }
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw new InputError(`${label}: __metadata__ must be an object of strings`);
      }
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== "string") {
          throw new InputError(
            `${label}: __metadata__.${key} must be a string, got ${describe(value)}`,
          );
        }
        metadata[key] = value;
      }
      continue;
    }
    tensors.set(name, parseEntry(label, { name, entry, dataSize }));
  }
  checkOverlaps(label, [...tensors.values()]);
  return { path, label, size, dataStart, metadata, tensors };
}

function parseEntry(
  label: string,
  { name, entry, dataSize }: { name: string; entry: unknown; dataSize: number },
): TensorInfo {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new InputError(
      `${label}: tensor ${name} must be an object with dtype, shape and data_offsets`,
    );
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== "string" || !(dtype in SAFETENSORS_DTYPES)) {
    throw new InputError(
      `${label}: tensor ${name} has unknown dtype ${describe(dtype)}; expected one of ${
        Object.keys(SAFETENSORS_DTYPES).join(" ")
      }`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw new InputError(
      `${label}: tensor ${name} shape must be an array of non-negative integers, got ${
        describe(shape)
      }`,
    );
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt) ||
    offsets[0] > offsets[1]
  ) {
    throw new InputError(
      `${label}: tensor ${name} data_offsets must be [begin, end] with 0 <= begin <= end, got ${
        describe(offsets)
      }`,
    );
  }
  const [begin, end] = offsets as number[];
  const count = numel(shape);
  const need = count * SAFETENSORS_DTYPES[dtype];
  if (!Number.isSafeInteger(need)) {
    throw new InputError(`${label}: tensor ${name} shape ${formatShape(shape)} is too large`);
  }
  if (end - begin !== need) {
    throw new InputError(
      `${label}: tensor ${name} data_offsets [${begin},${end}] span ${end - begin} bytes, ` +
        `but shape ${formatShape(shape)} of ${dtype} needs ${need}`,
    );
  }
  if (end > dataSize) {
    throw new InputError(
      `${label}: tensor ${name} data_offsets [${begin},${end}] run past the end of the data ` +
        `section (${dataSize} bytes; file truncated?)`,
    );
  }
  return { name, dtype, shape: [...shape], begin, end };
}

function checkOverlaps(label: string, infos: TensorInfo[]): void {
  const ranges = infos.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (cur.begin < prev.end) {
      throw new InputError(
        `${label}: tensors ${prev.name} [${prev.begin},${prev.end}] and ${cur.name} ` +
          `[${cur.begin},${cur.end}] overlap`,
      );
    }
  }
}

/** A dtype the writer accepts. */
export type WritableDtype = "F32" | "F16" | "BF16" | "I32" | "I64" | "U8";

/** Typed arrays the writer accepts as tensor data (raw bits for F16/BF16 as Uint16Array). */
export type TensorData =
  | Float32Array
  | Float16Array
  | Uint16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array;

/** One tensor to write. */
export interface TensorToWrite {
  dtype: WritableDtype;
  shape: number[];
  /** Row-major element data; its byte length must equal numel(shape) × dtype size. */
  data: TensorData;
}

/** Options for {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Written as `__metadata__`. */
  metadata?: Record<string, string>;
}

/**
 * Write tensors to a safetensors file, in sorted name order with the header padded with spaces
 * to a multiple of 8 bytes. The file is written to a temporary name in the same directory and
 * renamed into place, so readers never see a partial file.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header.__metadata__ = { ...options.metadata };
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors[name];
    if (name === "__metadata__") throw new RangeError(`writeSafetensors: reserved name ${name}`);
    if (!(dtype in SAFETENSORS_DTYPES)) {
      throw new RangeError(`writeSafetensors: ${name} has unknown dtype ${dtype}`);
    }
    if (!shape.every(isNonNegativeInt)) {
      throw new RangeError(`writeSafetensors: ${name} has a bad shape ${describe(shape)}`);
    }
    const need = numel(shape) * SAFETENSORS_DTYPES[dtype];
    if (data.byteLength !== need) {
      throw new RangeError(
        `writeSafetensors: ${name} has ${data.byteLength} bytes of data, shape ${
          formatShape(shape)
        } of ${dtype} needs ${need}`,
      );
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + need] };
    offset += need;
  }
  await replaceAtomically(path, async (file) => {
    await writeAll(file, encodeHeader(header));
    for (const name of names) {
      const data = tensors[name].data;
      await writeAll(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  });
}

/**
 * Replace the `__metadata__` of the safetensors file at `path` with `metadata`, keeping every
 * tensor's header entry and the whole data section byte for byte (data offsets count from the
 * start of the data section, so a longer header moves nothing they point at). The file is
 * validated first and replaced atomically, as {@linkcode writeSafetensors} writes.
 *
 * @example
 * ```ts
 * await rewriteSafetensorsMetadata("gates.safetensors", { ...file.metadata, note: "x" });
 * ```
 */
export async function rewriteSafetensorsMetadata(
  path: string,
  metadata: Record<string, string>,
): Promise<void> {
  const checked = await openSafetensors(path);
  const dataStart = checked.dataStart;
  checked.close();
  const source = await Deno.open(path, { read: true });
  try {
    const raw = new Uint8Array(dataStart - 8);
    await source.seek(8, Deno.SeekMode.Start);
    await readExactly(source, raw);
    const { __metadata__: _old, ...entries } = JSON.parse(new TextDecoder().decode(raw));
    const header = { __metadata__: { ...metadata }, ...entries };
    await replaceAtomically(path, async (file) => {
      await writeAll(file, encodeHeader(header));
      await source.seek(dataStart, Deno.SeekMode.Start);
      const buffer = new Uint8Array(1 << 20);
      while (true) {
        const n = await readExactly(source, buffer);
        if (n === 0) break;
        await writeAll(file, buffer.subarray(0, n));
      }
    });
  } finally {
    source.close();
  }
}

/** The 8-byte length and the JSON of `header`, padded with spaces to a multiple of 8 bytes. */
function encodeHeader(header: Record<string, unknown>): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Write a file through `fill` under a temporary name in the same directory, then rename it to
 * `path`, so readers never see a partial file.
 */
async function replaceAtomically(
  path: string,
  fill: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  const slash = path.lastIndexOf("/");
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(temp, { write: true, create: true, truncate: true });
  try {
    await fill(file);
    file.close();
    await Deno.rename(temp, path);
  } catch (error) {
    try {
      file.close();
    } catch {
      // already closed
    }
    await Deno.remove(temp).catch(() => undefined);
    throw error;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    done += await file.write(bytes.subarray(done));
  }
}

/** A tensor's header entry plus the file that holds it. */
export interface StoredTensorInfo extends TensorInfo {
  /** Label (path) of the safetensors file holding the tensor. */
  file: string;
}

/** Options for {@linkcode WeightStore.readF32}. */
export interface ReadF32Options {
  /** Fail unless the tensor has exactly this shape. */
  expectShape?: readonly number[];
  /** Where the expected shape comes from, for the message (default "expected"). */
  what?: string;
}

/** Names of the files a Hugging Face safetensors checkpoint uses. */
export const SINGLE_FILE = "model.safetensors";
/** Index file of a sharded checkpoint. */
export const INDEX_FILE = "model.safetensors.index.json";

/** The parts {@linkcode WeightStore} is built from. */
export interface WeightStoreParts {
  /** How messages name the checkpoint as a whole (the single file or the index file). */
  label: string;
  /** Every open file. */
  files: SafetensorsFile[];
  /** Which file holds each tensor. */
  where: Map<string, SafetensorsFile>;
}

/**
 * The tensors of a model directory: one `model.safetensors`, or the shards that
 * `model.safetensors.index.json` names. Open with {@linkcode openWeightStore}.
 */
export class WeightStore {
  /** The model directory. */
  readonly dir: string;
  /** How messages name the checkpoint as a whole: the single file or the index file. */
  readonly label: string;
  #files: SafetensorsFile[];
  #where: Map<string, SafetensorsFile>;

  /** Use {@linkcode openWeightStore}. */
  constructor(dir: string, parts: WeightStoreParts) {
    this.dir = dir;
    this.label = parts.label;
    this.#files = parts.files;
    this.#where = parts.where;
  }

  /** The open safetensors files (one, or each shard). */
  get files(): readonly SafetensorsFile[] {
    return this.#files;
  }

  /** All tensor names, sorted. */
  names(): string[] {
    return [...this.#where.keys()].sort();
  }

  /** Whether the checkpoint has tensor `name`. */
  has(name: string): boolean {
    return this.#where.has(name);
  }

  /** Header entry of `name` and the file holding it, or undefined when absent. */
  info(name: string): StoredTensorInfo | undefined {
    const file = this.#where.get(name);
    const info = file?.info(name);
    return file === undefined || info === undefined ? undefined : { ...info, file: file.label };
  }

  /**
   * The float dtype covering the most bytes of the checkpoint ("F32", "F16" or "BF16"), or the
   * most common dtype overall when no float tensor exists.
   */
  storedDtype(): string {
    const bytes = new Map<string, number>();
    for (const name of this.#where.keys()) {
      const info = this.info(name)!;
      bytes.set(info.dtype, (bytes.get(info.dtype) ?? 0) + (info.end - info.begin) + 1);
    }
    const floats = [...bytes].filter(([dtype]) => FLOAT_DTYPES.includes(dtype));
    const pool = floats.length > 0 ? floats : [...bytes];
    pool.sort((a, b) => b[1] - a[1]);
    return pool[0]?.[0] ?? "";
  }

  /** Read tensor `name` widened to f32, optionally checking its shape. */
  async readF32(name: string, options: ReadF32Options = {}): Promise<Float32Array> {
    const file = this.#where.get(name);
    if (file === undefined) throw new InputError(`${this.label}: tensor ${name} is missing`);
    const info = file.info(name)!;
    if (options.expectShape !== undefined && !sameShape(info.shape, options.expectShape)) {
      throw new InputError(
        `${file.label}: ${name} has shape ${formatShape(info.shape)}, ${
          options.what ?? "expected"
        } ${formatShape(options.expectShape)}`,
      );
    }
    return await file.readF32(name);
  }

  /** Close every file. */
  close(): void {
    for (const file of this.#files) file.close();
  }
}

/** Join a directory and a file name with "/" (a trailing "/" on `dir` is not doubled). */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Open the safetensors checkpoint of a Hugging Face model directory. A single
 * `model.safetensors` wins over an index; with an index, every shard its weight_map names must
 * exist and hold the tensors mapped to it.
 */
export async function openWeightStore(dir: string): Promise<WeightStore> {
  const single = joinPath(dir, SINGLE_FILE);
  if (await exists(single)) {
    const file = await openSafetensors(single);
    const where = new Map(file.names().map((name) => [name, file]));
    return new WeightStore(dir, { label: single, files: [file], where });
  }
  const indexPath = joinPath(dir, INDEX_FILE);
  if (!(await exists(indexPath))) {
    const hasBin = await exists(joinPath(dir, "pytorch_model.bin")) ||
      await exists(joinPath(dir, "pytorch_model.bin.index.json"));
    throw new InputError(
      `${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} found` +
        (hasBin ? " (PyTorch .bin checkpoints are not supported; convert to safetensors)" : ""),
    );
  }
  const weightMap = await readWeightMap(indexPath);
  const shardNames = [...new Set(Object.values(weightMap))].sort();
  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      const shardPath = joinPath(dir, shard);
      if (!(await exists(shardPath))) {
        throw new InputError(
          `${indexPath}: shard ${shard} listed in weight_map is missing from ${dir}`,
        );
      }
      files.push(await openSafetensors(shardPath));
    }
    const byShard = new Map(shardNames.map((shard, i) => [shard, files[i]]));
    const where = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(weightMap)) {
      const file = byShard.get(shard)!;
      if (!file.has(name)) {
        throw new InputError(
          `${indexPath}: weight_map puts ${name} in ${shard}, but that shard has no such tensor`,
        );
      }
      where.set(name, file);
    }
    return new WeightStore(dir, { label: indexPath, files, where });
  } catch (error) {
    for (const file of files) file.close();
    throw error;
  }
}

async function readWeightMap(indexPath: string): Promise<Record<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (error) {
    throw new InputError(`${indexPath}: not valid JSON (${oneLine(error)})`, { cause: error });
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== "object" || Array.isArray(map)) {
    throw new InputError(
      `${indexPath}: weight_map must be an object mapping tensor names to shards`,
    );
  }
  const out: Record<string, string> = {};
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (
      typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes("\\") ||
      shard === "." || shard === ".."
    ) {
      throw new InputError(
        `${indexPath}: weight_map.${name} must be a shard file name in the same directory, got ${
          describe(shard)
        }`,
      );
    }
    out[name] = shard;
  }
  if (Object.keys(out).length === 0) throw new InputError(`${indexPath}: weight_map is empty`);
  return out;
}

/** Blocks read from each checkpoint file by {@linkcode checkpointFingerprint}, and their size. */
const FINGERPRINT_SAMPLES = 16;
const FINGERPRINT_SAMPLE_BYTES = 4096;

/**
 * A short hex digest that tells one checkpoint from another without reading it whole: SHA-256
 * over config.json and, for every weight file (`model.safetensors` or the index's shards), its
 * size and 16 blocks of 4 KiB spread evenly over it (the header and the last bytes included).
 * Two models of one shape with other weights differ in every block, so artefacts derived from a
 * model (gate features) can be tied to it at the cost of 64 KiB read per file.
 *
 * @example
 * ```ts
 * const id = await checkpointFingerprint("models/organism-qwen3-10m"); // "3f9c…" (16 hex digits)
 * ```
 */
export async function checkpointFingerprint(dir: string): Promise<string> {
  const parts: Uint8Array[] = [await Deno.readFile(joinPath(dir, "config.json"))];
  const single = joinPath(dir, SINGLE_FILE);
  const files = await exists(single)
    ? [single]
    : [...new Set(Object.values(await readWeightMap(joinPath(dir, INDEX_FILE))))].sort()
      .map((shard) => joinPath(dir, shard));
  for (const path of files) {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      parts.push(new TextEncoder().encode(`${path.slice(path.lastIndexOf("/") + 1)}:${size}`));
      const span = Math.max(0, size - FINGERPRINT_SAMPLE_BYTES);
      for (let k = 0; k < FINGERPRINT_SAMPLES; k++) {
        const offset = Math.floor((k * span) / (FINGERPRINT_SAMPLES - 1));
        const block = new Uint8Array(Math.min(FINGERPRINT_SAMPLE_BYTES, size));
        await file.seek(offset, Deno.SeekMode.Start);
        const n = await readExactly(file, block);
        parts.push(block.subarray(0, n));
      }
    } finally {
      file.close();
    }
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  return await shortDigest(joined);
}
