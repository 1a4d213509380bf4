/**
 * Content digests: short ones (the first 8 bytes of SHA-256 as 16 hex digits) name sweep cell
 * ids, gate files, checkpoint fingerprints and gate-feature samples; a file's full SHA-256
 * identifies a benchmark file a sweep read.
 *
 * @module
 */

import { createHash } from "node:crypto";

/**
 * SHA-256 of `data` (a string is hashed as UTF-8), its first 8 bytes in hex.
 *
 * @example
 * ```ts
 * await shortDigest("abc"); // "ba7816bf8f01cfea"
 * ```
 */
export async function shortDigest(data: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * SHA-256 of the file at `path`, all 32 bytes in hex, read in chunks (a benchmark file of
 * gigabytes is never held whole).
 *
 * @example
 * ```ts
 * await fileSha256("data/longbench/hotpotqa.jsonl"); // "9f86d081884c7d65…" (64 digits)
 * ```
 */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}
