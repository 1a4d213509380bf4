import { assertEquals } from "./tests/assert.ts";
import { shortDigest } from "./digest.ts";

Deno.test("shortDigest: SHA-256's first 8 bytes in hex, of text as UTF-8 or of bytes", async () => {
  assertEquals(await shortDigest("abc"), "ba7816bf8f01cfea"); // FIPS 180-2's example
  assertEquals(await shortDigest(new TextEncoder().encode("abc")), "ba7816bf8f01cfea");
});
