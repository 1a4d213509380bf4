/**
 * The data-only pickle reader on hand-assembled pickles (every opcode written out below), and
 * the zip reader on archives assembled here (stored and deflated entries). What must be read
 * is read; every way of smuggling code in is refused by name.
 */

import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { assertRejects } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { PyDict, PyNumpyArray, PyTensor, PyTuple, type PyValue, readPickle } from "./pickle.ts";
import { crc32, ZipArchive } from "./zip.ts";

const enc = new TextEncoder();

/** Concatenate opcodes: numbers are bytes, strings are their UTF-8 bytes. */
function p(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((x) =>
    typeof x === "number" ? Uint8Array.of(x) : typeof x === "string" ? enc.encode(x) : x
  );
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

/** BINUNICODE s. */
function str(s: string): Uint8Array {
  const bytes = enc.encode(s);
  return p(0x58, u32(bytes.length), bytes);
}

const read = (bytes: Uint8Array, persistentLoad?: (pid: PyValue) => unknown) =>
  readPickle(bytes, { label: "test.pkl", persistentLoad });

Deno.test("plain containers, numbers, strings and memo references are read", () => {
  const f = new Uint8Array(8);
  new DataView(f.buffer).setFloat64(0, 0.25, false);
  // {"a": [1, 300, -2, 0.25, True, None], "b": ("x", b"\x01\x02"), "c": <memo of the list>}
  // deno-fmt-ignore
  const bytes = p(
    0x80, 2, 0x7d, 0x71, 0, 0x28,
    str("a"), 0x5d, 0x71, 1, 0x28, 0x4b, 1, 0x4d, 0x2c, 0x01, 0x4a, u32(0xfffffffe),
    0x47, f, 0x88, 0x4e, 0x65,
    str("b"), 0x8c, 1, "x", 0x43, 2, 1, 2, 0x86,
    str("c"), 0x68, 1,
    0x75, 0x2e,
  );
  const v = read(bytes) as PyDict;
  assert(v instanceof PyDict);
  const list = v.entries.get("a") as PyValue[];
  assertEquals(list, [1, 300, -2, 0.25, true, null]);
  const tuple = v.entries.get("b") as PyTuple;
  assertEquals(tuple.items[0], "x");
  assertEquals(tuple.items[1], Uint8Array.of(1, 2));
  assert(v.entries.get("c") === list, "BINGET returns the memoised object itself");
});

Deno.test("LONG1 reads signed little-endian integers, big ones as bigint", () => {
  assertEquals(read(p(0x8a, 2, 0xff, 0x7f, 0x2e)), 32767);
  assertEquals(read(p(0x8a, 1, 0xff, 0x2e)), -1);
  assertEquals(read(p(0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x2e)), 2n ** 62n);
});

Deno.test("an OrderedDict state dict of a tensor with _metadata is read, storages resolved", () => {
  // deno-fmt-ignore
  const pid = p(
    0x28, str("storage"), 0x63, "torch\nFloatStorage\n", str("0"), str("cpu"), 0x4b, 6, 0x74,
  );
  // deno-fmt-ignore
  const bytes = p(
    0x80, 2,
    0x63, "collections\nOrderedDict\n", 0x29, 0x52, // OrderedDict()
    str("w"),
    0x63, "torch._utils\n_rebuild_tensor_v2\n",
    0x28, pid, 0x51, 0x4b, 0, 0x4b, 2, 0x4b, 3, 0x86, 0x4b, 3, 0x4b, 1, 0x86, 0x89,
    0x63, "collections\nOrderedDict\n", 0x29, 0x52, 0x74, 0x52, // _rebuild_tensor_v2(...)
    0x73, // SETITEM
    0x7d, str("_metadata"), 0x7d, 0x73, 0x62, // BUILD {"_metadata": {}}
    0x2e,
  );
  const seen: PyValue[] = [];
  const v = read(bytes, (id) => {
    seen.push(id);
    return { key: "0" };
  }) as PyDict;
  assertEquals(v.kind, "OrderedDict");
  const t = v.entries.get("w") as PyTensor;
  assert(t instanceof PyTensor);
  assertEquals([t.offset, t.shape, t.stride], [0, [2, 3], [3, 1]]);
  assertEquals(t.storage.value, { key: "0" });
  assertEquals((seen[0] as PyTuple).items[0], "storage");
  assert(v.attributes instanceof PyDict);
});

Deno.test("numpy arrays as numpy pickles them (protocol 2, _codecs bytes) are read as data", () => {
  const raw = new Float64Array([0.5, 1.5]);
  const latin1 = String.fromCharCode(...new Uint8Array(raw.buffer));
  // deno-fmt-ignore
  const bytes = p(
    0x80, 2,
    0x63, "numpy._core.multiarray\n_reconstruct\n", 0x63, "numpy\nndarray\n",
    0x4b, 0, 0x85, 0x63, "_codecs\nencode\n", str("b"), str("latin1"), 0x86, 0x52, 0x87, 0x52,
    0x28, 0x4b, 1, 0x4b, 2, 0x85,
    0x63, "numpy\ndtype\n", str("f8"), 0x89, 0x88, 0x87, 0x52,
    0x28, 0x4b, 3, str("<"), 0x4e, 0x4e, 0x4e, 0x4a, u32(0xffffffff), 0x4a, u32(0xffffffff),
    0x4b, 0, 0x74, 0x62, // dtype BUILD
    0x89, 0x63, "_codecs\nencode\n", str(latin1), str("latin1"), 0x86, 0x52,
    0x74, 0x62, // array BUILD
    0x2e,
  );
  const a = read(bytes) as PyNumpyArray;
  assert(a instanceof PyNumpyArray);
  assertEquals(a.shape, [2]);
  assertEquals(a.toNumbers(), [0.5, 1.5]);
});

Deno.test("pickles with code in them are refused, naming the global or opcode", () => {
  // deno-fmt-ignore
  const cases: [string, Uint8Array, string][] = [
    ["GLOBAL os.system", p(0x80, 2, 0x63, "os\nsystem\n", str("ls"), 0x85, 0x52, 0x2e), "os.system"],
    ["STACK_GLOBAL builtins.eval", p(0x80, 4, 0x8c, 8, "builtins", 0x8c, 4, "eval", 0x93, 0x2e), "builtins.eval"],
    ["INST", p(0x28, 0x69, "os\nsystem\n", 0x2e), "INST"],
    ["NEWOBJ", p(0x80, 2, 0x4e, 0x29, 0x81, 0x2e), "NEWOBJ"],
    ["EXT1", p(0x80, 2, 0x82, 1, 0x2e), "EXT1"],
    ["REDUCE of a storage type", p(0x80, 2, 0x63, "torch\nFloatStorage\n", 0x29, 0x52, 0x2e), "REDUCE of torch.FloatStorage"],
    ["BUILD of a dict", p(0x80, 2, 0x7d, 0x7d, 0x62, 0x2e), "BUILD of a PyDict"],
    ["text protocol", p(0x49, "1\n", 0x2e), "INT"],
  ];
  for (const [what, bytes, mention] of cases) {
    const e = assertThrows(() => read(bytes), InputError, mention);
    assert(!e.message.includes("\n"), `${what}: one line`);
    assert(e.message.startsWith("test.pkl: "), `${what}: names the file`);
  }
});

Deno.test("truncated and malformed pickles are refused", () => {
  assertThrows(() => read(p(0x80, 2, 0x58, u32(100), "ab")), InputError, "truncated");
  assertThrows(() => read(p(0x80, 2, 0x68, 7, 0x2e)), InputError, "memo entry 7");
  assertThrows(() => read(p(0x80, 2, 0x4e, 0x4e, 0x2e)), InputError, "left on the stack");
  assertThrows(() => read(p(0x80, 2, 0x51, 0x2e)), InputError, "empty stack");
  assertThrows(() => read(p(0x80, 2, 0x4e, 0x51, 0x2e)), InputError, "persistent id");
});

/** A zip of `files` with stored (0) or deflated (8) entries, written as the spec says. */
async function makeZip(files: [string, Uint8Array, 0 | 8][]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data, method] of files) {
    const body = method === 0 ? data : new Uint8Array(
      await new Response(
        new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
          new CompressionStream("deflate-raw"),
        ),
      ).arrayBuffer(),
    );
    const nameBytes = enc.encode(name);
    const local = new Uint8Array(30 + nameBytes.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, method, true);
    lv.setUint32(14, crc32(data), true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    const cd = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc32(data), true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    cd.set(nameBytes, 46);
    parts.push(local, body);
    central.push(cd);
    offset += local.length + body.length;
  }
  const cdSize = central.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return p(...parts, ...central, end);
}

Deno.test("zip: stored and deflated entries read back, CRC checked", async () => {
  const text = enc.encode("hello gate ".repeat(50));
  const zip = ZipArchive.open(
    await makeZip([["a/stored", text, 0], ["a/deflated", text, 8]]),
    "t.zip",
  );
  assertEquals(zip.names(), ["a/stored", "a/deflated"]);
  assertEquals(await zip.read("a/stored"), text);
  assertEquals(await zip.read("a/deflated"), text);
  assert(zip.entry("a/deflated")!.compressedSize < text.length);
  await assertRejects(() => zip.read("a/missing"), InputError, "a/missing is missing");

  const bad = await makeZip([["x", text, 8]]);
  bad[40] ^= 0x55; // inside the deflate stream
  const damaged = ZipArchive.open(bad, "bad.zip");
  await assertRejects(() => damaged.read("x"), InputError, "bad.zip: zip entry x");
  assertEquals(crc32(enc.encode("123456789")), 0xcbf43926);
});
