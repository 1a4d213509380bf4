/**
 * Short content digests: the first 8 bytes of SHA-256 as 16 hex digits. Sweep cell ids, gate
 * files, checkpoint fingerprints and gate-feature samples are named by them.
 *
 * @module
 */

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
