/**
 * A small zip reader for torch checkpoints (`torch.save` writes a zip archive of stored,
 * uncompressed entries with zip64 end records). Reads the central directory, checks every
 * entry's CRC-32, and inflates deflated entries with the platform's DecompressionStream.
 * Multi-disk archives and encryption are refused.
 *
 * @module
 */

import { InputError } from "../../errors.ts";

/** One entry of the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/**
 * A zip archive held in memory.
 *
 * @example
 * ```ts
 * const zip = ZipArchive.open(await Deno.readFile("gate.pt"), "gate.pt");
 * const pkl = await zip.read(zip.names().find((n) => n.endsWith("/data.pkl"))!);
 * ```
 */
export class ZipArchive {
  readonly label: string;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #entries: Map<string, ZipEntry>;

  private constructor(bytes: Uint8Array, label: string, entries: Map<string, ZipEntry>) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.label = label;
    this.#entries = entries;
  }

  /** Parse the central directory of `bytes`; `label` names the file in errors. */
  static open(bytes: Uint8Array, label: string): ZipArchive {
    return new ZipArchive(bytes, label, readCentralDirectory(bytes, label));
  }

  /** Entry names in directory order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** The entry called `name`, or undefined. */
  entry(name: string): ZipEntry | undefined {
    return this.#entries.get(name);
  }

  /** The uncompressed contents of entry `name`, CRC-checked (a view into the archive when stored). */
  async read(name: string): Promise<Uint8Array> {
    const e = this.#entries.get(name);
    if (e === undefined) throw new InputError(`${this.label}: zip entry ${name} is missing`);
    const v = this.#view;
    const at = e.localOffset;
    if (at + 30 > this.#bytes.length || v.getUint32(at, true) !== LOCAL) {
      throw new InputError(`${this.label}: zip entry ${name} has no local header at ${at}`);
    }
    const start = at + 30 + v.getUint16(at + 26, true) + v.getUint16(at + 28, true);
    const end = start + e.compressedSize;
    if (end > this.#bytes.length) {
      throw new InputError(`${this.label}: zip entry ${name} runs past the end of the file`);
    }
    const raw = this.#bytes.subarray(start, end);
    let data: Uint8Array;
    if (e.method === 0) {
      data = raw;
    } else if (e.method === 8) {
      data = await inflateRaw(raw, `${this.label}: zip entry ${name}`);
    } else {
      throw new InputError(
        `${this.label}: zip entry ${name} uses compression method ${e.method}; only stored and deflate are read`,
      );
    }
    if (data.length !== e.size) {
      throw new InputError(
        `${this.label}: zip entry ${name} holds ${data.length} bytes, its directory says ${e.size}`,
      );
    }
    if (crc32(data) !== e.crc32) {
      throw new InputError(
        `${this.label}: zip entry ${name} fails its CRC-32 check (corrupt file)`,
      );
    }
    return data;
  }
}

function readCentralDirectory(bytes: Uint8Array, label: string): Map<string, ZipEntry> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const notZip = () =>
    new InputError(
      `${label}: not a zip archive (torch checkpoints saved since torch 1.6 are zip files)`,
    );
  if (bytes.length < 22) throw notZip();
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (v.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw notZip();
  if (v.getUint16(eocd + 4, true) !== 0 || v.getUint16(eocd + 6, true) !== 0) {
    throw new InputError(`${label}: multi-disk zip archives are not supported`);
  }
  let count = v.getUint16(eocd + 10, true);
  let cdSize = v.getUint32(eocd + 12, true);
  let cdOffset = v.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if (locator >= 0 && v.getUint32(locator, true) === ZIP64_LOCATOR) {
    const at = safeNumber(v.getBigUint64(locator + 8, true), label);
    if (at + 56 > bytes.length || v.getUint32(at, true) !== ZIP64_EOCD) {
      throw new InputError(`${label}: zip64 end record is missing or damaged`);
    }
    count = safeNumber(v.getBigUint64(at + 32, true), label);
    cdSize = safeNumber(v.getBigUint64(at + 40, true), label);
    cdOffset = safeNumber(v.getBigUint64(at + 48, true), label);
  }
  if (cdOffset + cdSize > bytes.length) {
    throw new InputError(
      `${label}: zip central directory runs past the end of the file (truncated?)`,
    );
  }
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  const decoder = new TextDecoder();
  for (let i = 0; i < count; i++) {
    if (p + 46 > bytes.length || v.getUint32(p, true) !== CENTRAL) {
      throw new InputError(`${label}: zip central directory entry ${i} is damaged`);
    }
    const flags = v.getUint16(p + 8, true);
    if (flags & 1) throw new InputError(`${label}: encrypted zip entries are not supported`);
    const nameLength = v.getUint16(p + 28, true);
    const extraLength = v.getUint16(p + 30, true);
    const commentLength = v.getUint16(p + 32, true);
    const name = decoder.decode(bytes.subarray(p + 46, p + 46 + nameLength));
    const entry: ZipEntry = {
      name,
      method: v.getUint16(p + 10, true),
      crc32: v.getUint32(p + 16, true),
      compressedSize: v.getUint32(p + 20, true),
      size: v.getUint32(p + 24, true),
      localOffset: v.getUint32(p + 42, true),
    };
    readZip64Extra(v, { entry, at: p + 46 + nameLength, length: extraLength, label });
    entries.set(name, entry);
    p += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Fields stored as 0xFFFFFFFF take their values, in order, from the zip64 extra field. */
function readZip64Extra(
  v: DataView,
  { entry, at, length, label }: { entry: ZipEntry; at: number; length: number; label: string },
): void {
  const FULL = 0xffffffff;
  if (entry.size !== FULL && entry.compressedSize !== FULL && entry.localOffset !== FULL) return;
  let p = at;
  while (p + 4 <= at + length) {
    const id = v.getUint16(p, true);
    const size = v.getUint16(p + 2, true);
    if (id === 0x0001) {
      let q = p + 4;
      const next = () => {
        const n = safeNumber(v.getBigUint64(q, true), label);
        q += 8;
        return n;
      };
      if (entry.size === FULL) entry.size = next();
      if (entry.compressedSize === FULL) entry.compressedSize = next();
      if (entry.localOffset === FULL) entry.localOffset = next();
      return;
    }
    p += 4 + size;
  }
  throw new InputError(`${label}: zip entry ${entry.name} needs a zip64 extra field it lacks`);
}

function safeNumber(n: bigint, label: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InputError(`${label}: zip offset ${n} is out of range`);
  }
  return Number(n);
}

async function inflateRaw(raw: Uint8Array, what: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("deflate-raw"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new InputError(`${what}: deflate data is corrupt`, { cause: error });
  }
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE 802.3, as zip uses). */
export function crc32(data: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
