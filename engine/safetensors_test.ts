import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { makeRandomModel } from "./random_model.ts";
import {
  bf16BitsToF32,
  checkpointFingerprint,
  f16BitsToF32,
  f32ToBf16,
  f32ToF16,
  openSafetensors,
  openWeightStore,
  rewriteSafetensorsMetadata,
  roundToBf16,
  roundToF16,
  writeSafetensors,
} from "./safetensors.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_st_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Bytes of a safetensors file with an arbitrary header (no validation). */
function rawFile(header: unknown, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

async function expectOpenError(bytes: Uint8Array, includes: string[]): Promise<string> {
  let message = "";
  await withTempDir(async (dir) => {
    const path = `${dir}/model.safetensors`;
    await Deno.writeFile(path, bytes);
    const error = await assertRejects(() => openSafetensors(path), InputError);
    message = error.message;
  });
  assert(!message.includes("\n"), `message is one line: ${message}`);
  assert(message.includes("model.safetensors: "), `message names the file: ${message}`);
  for (const part of includes) {
    assert(message.includes(part), `expected "${part}" in: ${message}`);
  }
  return message;
}

Deno.test("writeSafetensors → openSafetensors round-trips F32, F16, BF16, I32, I64, U8", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/t.safetensors`;
    const f32 = new Float32Array([1.5, -2.25, 3e-8, 65504, -0, 1 / 3]);
    await writeSafetensors(path, {
      "z.f32": { dtype: "F32", shape: [2, 3], data: f32 },
      "a.f16": { dtype: "F16", shape: [6], data: f32ToF16(f32) },
      "m.bf16": { dtype: "BF16", shape: [3, 2], data: f32ToBf16(f32) },
      "i32": { dtype: "I32", shape: [2], data: new Int32Array([-7, 9]) },
      "i64": { dtype: "I64", shape: [1], data: new BigInt64Array([-5n]) },
      "u8": { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
      "empty": { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    }, { metadata: { format: "pt", note: "hi" } });
    const file = await openSafetensors(path);
    try {
      assertEquals(file.metadata, { format: "pt", note: "hi" });
      // Written in sorted name order.
      assertEquals(file.names(), ["a.f16", "empty", "i32", "i64", "m.bf16", "u8", "z.f32"]);
      assertEquals(file.info("m.bf16")?.shape, [3, 2]);
      assertEquals(file.info("z.f32")?.dtype, "F32");
      assertEquals(file.dataStart % 8, 0, "header padded to 8 bytes");
      assertEquals(await file.readF32("z.f32"), f32);
      const f16 = await file.readF32("a.f16");
      const bf16 = await file.readF32("m.bf16");
      for (let i = 0; i < f32.length; i++) {
        assertEquals(f16[i], roundToF16(f32[i]));
        assertEquals(bf16[i], roundToBf16(f32[i]));
      }
      assertEquals((await file.readF32("empty")).length, 0);
      const ints = await file.readBytes("i32");
      assertEquals(Array.from(new Int32Array(ints.buffer, 0, 2)), [-7, 9]);
      const bytes = await file.readBytes("i64");
      assertEquals(new BigInt64Array(bytes.buffer, 0, 1)[0], -5n);
      assertEquals(Array.from(await file.readBytes("u8")), [1, 2, 3]);
      await assertRejects(() => file.readF32("i32"), InputError, "has dtype I32");
      await assertRejects(() => file.readF32("nope"), InputError, "no tensor named nope");
    } finally {
      file.close();
    }
    // Atomic write leaves no temp files behind.
    const entries = [...Deno.readDirSync(dir)].map((e) => e.name);
    assertEquals(entries, ["t.safetensors"]);
  });
});

Deno.test("concurrent reads of one file return the right tensors", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/c.safetensors`;
    const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
    for (let t = 0; t < 20; t++) {
      tensors[`t${t}`] = {
        dtype: "F32",
        shape: [100],
        data: Float32Array.from({ length: 100 }, (_, i) => t * 1000 + i),
      };
    }
    await writeSafetensors(path, tensors);
    const file = await openSafetensors(path);
    try {
      const all = await Promise.all(Object.keys(tensors).map((n) => file.readF32(n)));
      all.forEach((values, t) => assertEquals(values, tensors[`t${t}`].data));
    } finally {
      file.close();
    }
  });
});

Deno.test("rewriteSafetensorsMetadata: new metadata, every tensor entry and data byte kept", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/g.safetensors`;
    // Over 1 MiB of data, so the copy takes several reads.
    const big = Float32Array.from({ length: 300_000 }, (_, i) => Math.sin(i));
    await writeSafetensors(path, {
      "b.big": { dtype: "F32", shape: [300_000], data: big },
      "a.small": { dtype: "BF16", shape: [2], data: new Uint16Array([1, 2]) },
    }, { metadata: { format: "x", note: "old" } });
    const before = await Deno.readFile(path);
    const old = await openSafetensors(path);
    const oldStart = old.dataStart;
    const oldInfos = old.names().map((n) => old.info(n));
    old.close();

    await rewriteSafetensorsMetadata(path, { format: "x", note: "new", added: "a longer value" });
    const after = await Deno.readFile(path);
    const file = await openSafetensors(path);
    try {
      assertEquals(file.metadata, { format: "x", note: "new", added: "a longer value" });
      assertEquals(file.names().map((n) => file.info(n)), oldInfos);
      assertEquals(file.dataStart % 8, 0, "header padded to 8 bytes");
      assert(file.dataStart > oldStart, "the header grew");
      assertEquals(after.subarray(file.dataStart), before.subarray(oldStart));
      assertEquals(await file.readF32("b.big"), big);
    } finally {
      file.close();
    }
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["g.safetensors"]);

    // A file that does not validate is refused and left as it was.
    await Deno.writeFile(path, after.subarray(0, after.length - 4));
    await assertRejects(
      () => rewriteSafetensorsMetadata(path, {}),
      InputError,
      "run past the end of the data section",
    );
    assertEquals((await Deno.stat(path)).size, after.length - 4);
  });
});

Deno.test("f32ToBf16 rounds to nearest even and keeps NaN and infinities", () => {
  // 1 + 2^-8 is exactly halfway between bf16 1 and 1 + 2^-7: ties to even (1).
  const halfway = 1 + 2 ** -8;
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  const halfwayOdd = 1 + 3 * 2 ** -8;
  const above = 1 + 2 ** -8 + 2 ** -20;
  const values = new Float32Array([halfway, halfwayOdd, above, Infinity, -Infinity, NaN, -1.5]);
  const back = bf16BitsToF32(f32ToBf16(values));
  assertEquals(back[0], 1);
  assertEquals(back[1], 1 + 2 ** -6);
  assertEquals(back[2], 1 + 2 ** -7);
  assertEquals(back[3], Infinity);
  assertEquals(back[4], -Infinity);
  assert(Number.isNaN(back[5]));
  assertEquals(back[6], -1.5);
  // The largest finite f32 overflows to infinity in bf16, as in torch.
  assertEquals(roundToBf16(3.4028234663852886e38), Infinity);
  assertEquals(f32ToBf16(new Float32Array([1]))[0], 0x3f80);
});

Deno.test("f32ToF16 rounds to nearest even; f16BitsToF32 widens exactly", () => {
  const values = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 6e-8, -2]);
  const bits = f32ToF16(values);
  const back = f16BitsToF32(bits);
  assertEquals(back[0], 1);
  assertEquals(back[1], 1 + 2 ** -9);
  assertEquals(back[2], Infinity);
  assertEquals(back[3], 2 ** -24);
  assertEquals(back[4], -2);
  assertEquals(bits[4], 0xc000);
});

Deno.test("openSafetensors: file shorter than 8 bytes", async () => {
  await expectOpenError(new Uint8Array([1, 2, 3]), ["3 bytes", "too short"]);
});

Deno.test("openSafetensors: a directory is named as one", async () => {
  const dir = await Deno.makeTempDir();
  await assertRejects(() => openSafetensors(dir), InputError, `${dir}: is a directory`);
});

Deno.test("openSafetensors: header length past the end of the file", async () => {
  const bytes = rawFile({}, new Uint8Array(0), 9000n);
  await expectOpenError(bytes, ["header length 9000", "past the end of the file", "10 bytes"]);
});

Deno.test("openSafetensors: header is not JSON / not an object", async () => {
  await expectOpenError(rawFile("{nope", new Uint8Array(0)), ["not valid JSON"]);
  await expectOpenError(rawFile("[1,2]", new Uint8Array(0)), ["must be a JSON object", "array"]);
});

Deno.test("openSafetensors: unknown dtype lists the known ones", async () => {
  const header = { w: { dtype: "Q4_K", shape: [2], data_offsets: [0, 2] } };
  await expectOpenError(rawFile(header, new Uint8Array(2)), [
    'tensor w has unknown dtype "Q4_K"',
    "F64 F32 F16 BF16 I64 I32 I16 I8",
    "BOOL",
  ]);
});

Deno.test("openSafetensors: bad shape and bad data_offsets", async () => {
  await expectOpenError(
    rawFile({ w: { dtype: "F32", shape: [2, -1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    ["tensor w shape must be an array of non-negative integers", "[2,-1]"],
  );
  await expectOpenError(
    rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, new Uint8Array(8)),
    ["tensor w data_offsets must be [begin, end]"],
  );
  await expectOpenError(
    rawFile({ w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 12] } }, new Uint8Array(12)),
    ["tensor w data_offsets [0,12] span 12 bytes", "shape [2,3] of F32 needs 24"],
  );
});

Deno.test("openSafetensors: truncated data (offsets out of range)", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/model.safetensors`;
    await writeSafetensors(path, {
      a: { dtype: "F32", shape: [4], data: new Float32Array(4) },
      b: { dtype: "F32", shape: [4], data: new Float32Array(4) },
    });
    const bytes = await Deno.readFile(path);
    await expectOpenError(bytes.subarray(0, bytes.length - 5), [
      "tensor b data_offsets [16,32] run past the end of the data section (27 bytes",
      "truncated",
    ]);
  });
});

Deno.test("openSafetensors: overlapping tensors", async () => {
  const header = {
    a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
    b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
  };
  await expectOpenError(rawFile(header, new Uint8Array(24)), [
    "tensors a [0,16] and b [8,24] overlap",
  ]);
});

Deno.test("openSafetensors: __metadata__ must hold strings; missing file", async () => {
  const header = { __metadata__: { format: 3 } };
  await expectOpenError(rawFile(header, new Uint8Array(0)), [
    "__metadata__.format must be a string",
  ]);
  await assertRejects(
    () => openSafetensors("/nonexistent/model.safetensors"),
    InputError,
    "/nonexistent/model.safetensors: file not found",
  );
});

Deno.test("WeightStore: single file, shape check names the file and both shapes", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/model.safetensors`, {
      "model.layers.0.self_attn.q_proj.weight": {
        dtype: "BF16",
        shape: [96, 64],
        data: new Uint16Array(96 * 64),
      },
      "model.norm.weight": { dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) },
    });
    const store = await openWeightStore(dir);
    try {
      assertEquals(store.names(), ["model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]);
      assert(store.has("model.norm.weight"));
      assert(!store.has("lm_head.weight"));
      assertEquals(store.info("model.norm.weight")?.file, `${dir}/model.safetensors`);
      assertEquals(store.storedDtype(), "BF16");
      assertEquals(
        await store.readF32("model.norm.weight", { expectShape: [3] }),
        new Float32Array([1, 2, 3]),
      );
      const error = await assertRejects(
        () =>
          store.readF32("model.layers.0.self_attn.q_proj.weight", {
            expectShape: [128, 64],
            what: "config.json implies",
          }),
        InputError,
      );
      assertEquals(
        error.message,
        `${dir}/model.safetensors: model.layers.0.self_attn.q_proj.weight has shape [96,64], config.json implies [128,64]`,
      );
      await assertRejects(
        () => store.readF32("lm_head.weight"),
        InputError,
        "lm_head.weight is missing",
      );
    } finally {
      store.close();
    }
  });
});

Deno.test("WeightStore: sharded checkpoint via model.safetensors.index.json", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, {
      a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
    });
    await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, {
      b: { dtype: "F16", shape: [1], data: f32ToF16(new Float32Array([0.5])) },
      unlisted: { dtype: "F32", shape: [1], data: new Float32Array([9]) },
    });
    const index = {
      metadata: { total_size: 10 },
      weight_map: {
        a: "model-00001-of-00002.safetensors",
        b: "model-00002-of-00002.safetensors",
      },
    };
    await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, JSON.stringify(index));
    const store = await openWeightStore(dir);
    try {
      assertEquals(store.names(), ["a", "b"]);
      assertEquals(store.files.length, 2);
      assertEquals(await store.readF32("a"), new Float32Array([1, 2]));
      assertEquals(await store.readF32("b"), new Float32Array([0.5]));
      assertEquals(store.info("b")?.file, `${dir}/model-00002-of-00002.safetensors`);
      assertEquals(store.storedDtype(), "F32");
    } finally {
      store.close();
    }

    // A tensor mapped to a shard that lacks it.
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({
        weight_map: { ...index.weight_map, c: "model-00001-of-00002.safetensors" },
      }),
    );
    await assertRejects(
      () => openWeightStore(dir),
      InputError,
      "weight_map puts c in model-00001-of-00002.safetensors, but that shard has no such tensor",
    );

    // A listed shard that does not exist.
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({
        weight_map: { ...index.weight_map, d: "model-00003-of-00003.safetensors" },
      }),
    );
    await assertRejects(
      () => openWeightStore(dir),
      InputError,
      `${dir}/model.safetensors.index.json: shard model-00003-of-00003.safetensors listed in weight_map is missing`,
    );

    // Malformed weight_map entries.
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ weight_map: { a: "../elsewhere.safetensors" } }),
    );
    await assertRejects(
      () => openWeightStore(dir),
      InputError,
      "weight_map.a must be a shard file name",
    );
    await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, "{");
    await assertRejects(() => openWeightStore(dir), InputError, "index.json: not valid JSON");
  });
});

Deno.test("openWeightStore: no checkpoint in the directory", async () => {
  await withTempDir(async (dir) => {
    await assertRejects(
      () => openWeightStore(dir),
      InputError,
      `${dir}: no model.safetensors or model.safetensors.index.json found`,
    );
    await Deno.writeFile(`${dir}/pytorch_model.bin`, new Uint8Array(4));
    await assertRejects(
      () => openWeightStore(dir),
      InputError,
      ".bin checkpoints are not supported",
    );
  });
});

Deno.test("checkpointFingerprint: stable per checkpoint, other weights of one shape differ", async () => {
  const root = await Deno.makeTempDir();
  try {
    const make = async (name: string, seed: number, sharded = false) => {
      await makeRandomModel(`${root}/${name}`, { arch: "qwen3", seed, sharded });
      return checkpointFingerprint(`${root}/${name}`);
    };
    const a = await make("a", 1);
    assertEquals(await checkpointFingerprint(`${root}/a`), a);
    assertEquals(a.length, 16);
    assert(await make("b", 2) !== a, "another seed, same shape");
    const sharded = await make("s", 1, true);
    assert(sharded !== a, "the same weights in shards are another checkpoint's files");
    assertEquals(await checkpointFingerprint(`${root}/s`), sharded);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
