/**
 * A data-only reader for Python pickles, enough for torch checkpoints of tensors and plain
 * containers. Nothing is ever executed: every GLOBAL resolves against a short allow-list of
 * names this module interprets itself, and anything else (another global, REDUCE of an unknown
 * callable, BUILD of an unknown object, an opcode outside the list) is a one-line InputError
 * naming it — a pickle with code in it is refused, never run.
 *
 * Understood globals:
 * - `collections.OrderedDict` (state dicts; a BUILD of its attributes, e.g. `_metadata`, is kept
 *   aside),
 * - `torch._utils._rebuild_tensor_v2` with `torch.FloatStorage` / `BFloat16Storage` /
 *   `HalfStorage` persistent ids (the caller's `persistentLoad` turns them into storages),
 * - numpy arrays as numpy pickles them (`numpy[._]core.multiarray._reconstruct`,
 *   `numpy.ndarray`, `numpy.dtype`) and `_codecs.encode(text, "latin1")` for the bytes inside
 *   them: the official gate checkpoints store their training curves as numpy arrays.
 *
 * @module
 */

import { InputError } from "../../errors.ts";

/** A Python tuple. */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A Python dict or OrderedDict with str/int keys, in insertion order. */
export class PyDict {
  readonly entries: Map<string | number, PyValue> = new Map();
  /** Attributes set by BUILD (an OrderedDict state dict's `_metadata`). */
  attributes: PyValue = null;
  constructor(readonly kind: "dict" | "OrderedDict") {}
}

/** A global from the allow-list (a callable or a type marker; never called). */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  /** "module.name". */
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What a persistent id resolved to (the caller decides: torch storages). */
export class PyPersistent {
  constructor(readonly value: unknown) {}
}

/** A torch tensor as `_rebuild_tensor_v2` describes it: a view into a storage. */
export class PyTensor {
  constructor(
    readonly storage: PyPersistent,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** A numpy dtype: its descriptor ("f8") and byte order ("<", ">", "|" or "="). */
export class PyNumpyDtype {
  byteOrder = "=";
  constructor(readonly descr: string) {}
}

/** A numpy array: raw little-endian bytes (or a list of objects) plus shape and dtype. */
export class PyNumpyArray {
  shape: number[] = [];
  dtype: PyNumpyDtype | null = null;
  fortranOrder = false;
  data: Uint8Array | PyValue[] = new Uint8Array(0);

  /** The elements as numbers, for f8/f4/i8/i4 arrays (C order). */
  toNumbers(): number[] {
    const descr = this.dtype?.descr ?? "";
    if (!(this.data instanceof Uint8Array) || this.dtype?.byteOrder === ">") {
      throw new InputError(`numpy array of dtype ${descr} cannot be read as numbers`);
    }
    const bytes = this.data.slice();
    switch (descr) {
      case "f8":
        return Array.from(new Float64Array(bytes.buffer));
      case "f4":
        return Array.from(new Float32Array(bytes.buffer));
      case "i8":
        return Array.from(new BigInt64Array(bytes.buffer), Number);
      case "i4":
        return Array.from(new Int32Array(bytes.buffer));
      default:
        throw new InputError(`numpy array of dtype ${descr} cannot be read as numbers`);
    }
  }
}

/** A value the reader produces. Lists are JS arrays; bytes are Uint8Array. */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PyGlobal
  | PyPersistent
  | PyTensor
  | PyNumpyDtype
  | PyNumpyArray;

/** Options of {@linkcode readPickle}. */
export interface ReadPickleOptions {
  /** Names the file in errors. */
  label: string;
  /** Resolve a persistent id (BINPERSID); absent = persistent ids are refused. */
  persistentLoad?: (pid: PyValue) => unknown;
}

const TORCH_STORAGES = new Set(["FloatStorage", "BFloat16Storage", "HalfStorage"]);

/** Whether `module.name` is on the allow-list. */
function allowedGlobal(module: string, name: string): boolean {
  if (module === "collections" && name === "OrderedDict") return true;
  if (module === "torch._utils" && name === "_rebuild_tensor_v2") return true;
  if (module === "torch" && TORCH_STORAGES.has(name)) return true;
  if (module === "_codecs" && name === "encode") return true;
  if (
    (module === "numpy.core.multiarray" || module === "numpy._core.multiarray") &&
    name === "_reconstruct"
  ) return true;
  return module === "numpy" && (name === "ndarray" || name === "dtype");
}

/** Opcode names, for messages about opcodes this reader does not take. */
const OPCODE_NAMES: Record<number, string> = {
  0x28: "MARK",
  0x2e: "STOP",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x46: "FLOAT",
  0x49: "INT",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4c: "LONG",
  0x4d: "BININT2",
  0x4e: "NONE",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x52: "REDUCE",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x58: "BINUNICODE",
  0x61: "APPEND",
  0x62: "BUILD",
  0x63: "GLOBAL",
  0x64: "DICT",
  0x7d: "EMPTY_DICT",
  0x65: "APPENDS",
  0x67: "GET",
  0x68: "BINGET",
  0x69: "INST",
  0x6a: "LONG_BINGET",
  0x6c: "LIST",
  0x5d: "EMPTY_LIST",
  0x6f: "OBJ",
  0x70: "PUT",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x73: "SETITEM",
  0x74: "TUPLE",
  0x29: "EMPTY_TUPLE",
  0x75: "SETITEMS",
  0x47: "BINFLOAT",
  0x80: "PROTO",
  0x81: "NEWOBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x8a: "LONG1",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE",
  0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x94: "MEMOIZE",
  0x95: "FRAME",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

const MARK = Symbol("mark");
type Slot = PyValue | typeof MARK;

/**
 * Read one pickle from `bytes` without executing anything.
 *
 * @example
 * ```ts
 * const value = readPickle(bytes, { label: "gate.pt/data.pkl", persistentLoad: (pid) => pid });
 * ```
 */
export function readPickle(bytes: Uint8Array, options: ReadPickleOptions): PyValue {
  const { label } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const stack: Slot[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  let opAt = 0;

  const fail = (what: string): never => {
    throw new InputError(`${label}: ${what} (pickle byte ${opAt})`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) fail("the pickle ends in the middle of an opcode (truncated?)");
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), pos += 2, view.getUint16(pos - 2, true));
  const i32 = () => (need(4), pos += 4, view.getInt32(pos - 4, true));
  const u32 = () => (need(4), pos += 4, view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const n = view.getBigUint64(pos, true);
    pos += 8;
    if (n > BigInt(bytes.length)) fail(`a length of ${n} bytes runs past the end`);
    return Number(n);
  };
  const take = (n: number) => (need(n), pos += n, bytes.subarray(pos - n, pos));
  const text = (n: number) => {
    const raw = take(n);
    try {
      return utf8.decode(raw);
    } catch {
      return fail("a string is not valid UTF-8");
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail("a GLOBAL name is not terminated");
    const s = new TextDecoder().decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) fail("the pickle pops from an empty stack");
    if (v === MARK) fail("the pickle pops a MARK as a value");
    return v as PyValue;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail("the pickle expects a value on the stack");
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail("the pickle has no MARK to pop to");
    const items = stack.splice(at) as PyValue[];
    items.shift();
    return items;
  };
  const setItem = (dict: PyValue, key: PyValue, value: PyValue) => {
    if (!(dict instanceof PyDict)) fail("SETITEM on something that is not a dict");
    if (typeof key !== "string" && typeof key !== "number") {
      fail("a dict key is neither a string nor an integer");
    }
    (dict as PyDict).entries.set(key as string | number, value);
  };
  const global = (module: string, name: string): PyGlobal => {
    if (!allowedGlobal(module, name)) {
      fail(
        `refers to ${module}.${name}, which is not a tensor or plain container; a pickle with code in it is refused`,
      );
    }
    return new PyGlobal(module, name);
  };

  while (true) {
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: { // STOP
        const result = pop();
        if (stack.length !== 0) fail("values are left on the stack at STOP");
        return result;
      }
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const n = op - 0x84;
        const items: PyValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push(new PyTuple(items));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail("APPEND to something that is not a list");
        (list as PyValue[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail("APPENDS to something that is not a list");
        (list as PyValue[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict("dict"));
        break;
      case 0x64: { // DICT
        const items = popMark();
        const dict = new PyDict("dict");
        for (let i = 0; i + 1 < items.length; i += 2) setItem(dict, items[i], items[i + 1]);
        stack.push(dict);
        break;
      }
      case 0x73: { // SETITEM
        const value = pop();
        const key = pop();
        setItem(top(), key, value);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        const dict = top();
        for (let i = 0; i + 1 < items.length; i += 2) setItem(dict, items[i], items[i + 1]);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const key = op === 0x68 ? u8() : u32();
        if (!memo.has(key)) fail(`memo entry ${key} is read before it is written`);
        stack.push(memo.get(key)!);
        break;
      }
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(littleEndianSigned(take(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(littleEndianSigned(take(u32())));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          fail("STACK_GLOBAL needs two strings");
        }
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (options.persistentLoad === undefined) {
          fail("a persistent id appears outside a checkpoint");
        }
        stack.push(new PyPersistent(options.persistentLoad!(pid)));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const callable = pop();
        stack.push(reduce(callable, args, fail));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        build(top(), state, fail);
        break;
      }
      default: {
        const name = OPCODE_NAMES[op] ?? "unknown";
        fail(
          `pickle opcode ${name} (0x${
            op.toString(16).padStart(2, "0")
          }) is not supported; only tensors and plain containers are read`,
        );
      }
    }
  }
}

function littleEndianSigned(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) n -= 1n << BigInt(8 * b.length);
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(n)
    : n;
}

function asInts(v: PyValue, what: string, fail: (s: string) => never): number[] {
  if (!(v instanceof PyTuple) || !v.items.every((x) => typeof x === "number")) {
    return fail(`${what} must be a tuple of integers`);
  }
  return v.items as number[];
}

function reduce(callable: PyValue, args: PyValue, fail: (s: string) => never): PyValue {
  if (!(callable instanceof PyGlobal)) return fail("REDUCE of something that is not a global");
  if (!(args instanceof PyTuple)) return fail(`REDUCE of ${callable.qualified} without a tuple`);
  const a = args.items;
  switch (callable.qualified) {
    case "collections.OrderedDict":
      if (a.length !== 0) return fail("OrderedDict(...) with arguments is not supported");
      return new PyDict("OrderedDict");
    case "torch._utils._rebuild_tensor_v2": {
      const [storage, offset] = a;
      if (!(storage instanceof PyPersistent) || typeof offset !== "number" || a.length < 4) {
        return fail("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)");
      }
      return new PyTensor(
        storage,
        offset,
        asInts(a[2], "tensor size", fail),
        asInts(a[3], "tensor stride", fail),
      );
    }
    case "_codecs.encode": {
      const [s, encoding] = a;
      if (typeof s !== "string" || encoding !== "latin1") {
        return fail("_codecs.encode is read only as encode(text, 'latin1')");
      }
      const out = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 255) return fail("_codecs.encode: a latin1 string holds a character above 255");
        out[i] = c;
      }
      return out;
    }
    case "numpy.core.multiarray._reconstruct":
    case "numpy._core.multiarray._reconstruct": {
      const cls = a[0];
      if (!(cls instanceof PyGlobal) || cls.qualified !== "numpy.ndarray") {
        return fail("numpy _reconstruct is read only for numpy.ndarray");
      }
      return new PyNumpyArray();
    }
    case "numpy.dtype": {
      if (typeof a[0] !== "string") return fail("numpy.dtype needs a descriptor string");
      return new PyNumpyDtype(a[0]);
    }
    default:
      return fail(`REDUCE of ${callable.qualified} is not supported (not a data constructor)`);
  }
}

function build(target: PyValue, state: PyValue, fail: (s: string) => never): void {
  if (target instanceof PyDict && target.kind === "OrderedDict") {
    target.attributes = state;
    return;
  }
  if (target instanceof PyNumpyDtype) {
    if (!(state instanceof PyTuple) || typeof state.items[1] !== "string") {
      fail("numpy dtype state must be a tuple with a byte order");
    }
    target.byteOrder = (state as PyTuple).items[1] as string;
    return;
  }
  if (target instanceof PyNumpyArray) {
    const s = state instanceof PyTuple ? state.items : [];
    const [, shape, dtype, fortran, data] = s;
    if (
      s.length !== 5 || !(dtype instanceof PyNumpyDtype) || typeof fortran !== "boolean" ||
      !(data instanceof Uint8Array || Array.isArray(data))
    ) {
      fail("numpy array state must be (version, shape, dtype, fortran, data)");
    }
    target.shape = asInts(shape, "numpy shape", fail);
    target.dtype = dtype as PyNumpyDtype;
    target.fortranOrder = fortran as boolean;
    target.data = data as Uint8Array | PyValue[];
    return;
  }
  const kind = target === null ? "None" : target?.constructor?.name ?? typeof target;
  fail(`BUILD of a ${kind} is not supported (only OrderedDict and numpy arrays take state)`);
}
