import { assertEquals } from "./tests/assert.ts";
import { fileSha256, shortDigest } from "./digest.ts";

Deno.test("shortDigest: SHA-256's first 8 bytes in hex, of text as UTF-8 or of bytes", async () => {
  assertEquals(await shortDigest("abc"), "ba7816bf8f01cfea"); // FIPS 180-2's example
  assertEquals(await shortDigest(new TextEncoder().encode("abc")), "ba7816bf8f01cfea");
});

Deno.test("fileSha256: the whole SHA-256 of a file's bytes, in hex", async () => {
  const path = await Deno.makeTempFile();
  await Deno.writeTextFile(path, "abc");
  assertEquals(
    await fileSha256(path),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // Larger than one read chunk: the same digest as hashing the bytes at once.
  const bytes = new Uint8Array(300_000).map((_, i) => (i * 31) % 251);
  await Deno.writeFile(path, bytes);
  assertEquals((await fileSha256(path)).slice(0, 16), await shortDigest(bytes));
  await Deno.remove(path);
});
