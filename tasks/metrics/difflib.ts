/**
 * A port of CPython 3.11's `difflib.SequenceMatcher` (no `isjunk`), enough for `ratio()`:
 * `b2j` with the autojunk heuristic (when `b` has ≥ 200 elements, an element occurring more than
 * `len(b) // 100 + 1` times is "popular" and left out of `b2j`), `find_longest_match` with its
 * extension passes, and `get_matching_blocks` with its queue order and adjacent-block merge.
 * Strings are compared by code point, as Python indexes them.
 *
 * @module
 */

import { codePoints } from "./py_text.ts";

/** One matching block: `a[i:i+size] == b[j:j+size]`. */
export interface MatchBlock {
  i: number;
  j: number;
  size: number;
}

/** Options of {@linkcode SequenceMatcher}. */
export interface SequenceMatcherOptions {
  /** Python's `autojunk` (default true). */
  autojunk?: boolean;
}

/** `difflib.SequenceMatcher(None, a, b, autojunk)` over string elements. */
export class SequenceMatcher {
  readonly a: readonly string[];
  readonly b: readonly string[];
  readonly #b2j = new Map<string, number[]>();
  readonly #popular = new Set<string>();
  #blocks: MatchBlock[] | null = null;

  /** Compare `a` with `b`; strings are split into code points. */
  constructor(
    a: string | readonly string[],
    b: string | readonly string[],
    options: SequenceMatcherOptions = {},
  ) {
    this.a = typeof a === "string" ? codePoints(a) : a;
    this.b = typeof b === "string" ? codePoints(b) : b;
    this.#chainB(options.autojunk ?? true);
  }

  #chainB(autojunk: boolean): void {
    const b = this.b;
    for (let i = 0; i < b.length; i++) {
      const indices = this.#b2j.get(b[i]);
      if (indices === undefined) this.#b2j.set(b[i], [i]);
      else indices.push(i);
    }
    const n = b.length;
    if (autojunk && n >= 200) {
      const ntest = Math.floor(n / 100) + 1;
      for (const [elt, indices] of this.#b2j) {
        if (indices.length > ntest) this.#popular.add(elt);
      }
      for (const elt of this.#popular) this.#b2j.delete(elt);
    }
  }

  /** The popular elements autojunk dropped from `b2j`. */
  get popular(): ReadonlySet<string> {
    return this.#popular;
  }

  /** Longest matching block in `a[alo:ahi]` × `b[blo:bhi]`, Python's tie-breaking. */
  findLongestMatch(alo: number, ahi: number, blo: number, bhi: number): MatchBlock {
    const a = this.a;
    const b = this.b;
    let besti = alo;
    let bestj = blo;
    let bestsize = 0;
    let j2len = new Map<number, number>();
    for (let i = alo; i < ahi; i++) {
      const newj2len = new Map<number, number>();
      const indices = this.#b2j.get(a[i]);
      if (indices !== undefined) {
        for (const j of indices) {
          if (j < blo) continue;
          if (j >= bhi) break;
          const k = (j2len.get(j - 1) ?? 0) + 1;
          newj2len.set(j, k);
          if (k > bestsize) {
            besti = i - k + 1;
            bestj = j - k + 1;
            bestsize = k;
          }
        }
      }
      j2len = newj2len;
    }
    // No element is junk (isjunk is None), so Python's two junk-extension passes never move;
    // the non-junk passes extend over popular elements, which b2j left out.
    while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) {
      besti--;
      bestj--;
      bestsize++;
    }
    while (
      besti + bestsize < ahi && bestj + bestsize < bhi &&
      a[besti + bestsize] === b[bestj + bestsize]
    ) {
      bestsize++;
    }
    return { i: besti, j: bestj, size: bestsize };
  }

  /** Python's `get_matching_blocks()`, ending with the `(len(a), len(b), 0)` sentinel. */
  getMatchingBlocks(): MatchBlock[] {
    if (this.#blocks !== null) return this.#blocks;
    const la = this.a.length;
    const lb = this.b.length;
    const queue: [number, number, number, number][] = [[0, la, 0, lb]];
    const found: MatchBlock[] = [];
    while (queue.length > 0) {
      const [alo, ahi, blo, bhi] = queue.pop()!;
      const x = this.findLongestMatch(alo, ahi, blo, bhi);
      const { i, j, size: k } = x;
      if (k > 0) {
        found.push(x);
        if (alo < i && blo < j) queue.push([alo, i, blo, j]);
        if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
      }
    }
    found.sort((p, q) => p.i - q.i || p.j - q.j || p.size - q.size);
    let i1 = 0;
    let j1 = 0;
    let k1 = 0;
    const merged: MatchBlock[] = [];
    for (const { i: i2, j: j2, size: k2 } of found) {
      if (i1 + k1 === i2 && j1 + k1 === j2) {
        k1 += k2;
      } else {
        if (k1 > 0) merged.push({ i: i1, j: j1, size: k1 });
        i1 = i2;
        j1 = j2;
        k1 = k2;
      }
    }
    if (k1 > 0) merged.push({ i: i1, j: j1, size: k1 });
    merged.push({ i: la, j: lb, size: 0 });
    this.#blocks = merged;
    return merged;
  }

  /** `2.0 * M / T`, M matched elements, T = len(a) + len(b); 1.0 when both are empty. */
  ratio(): number {
    let matches = 0;
    for (const block of this.getMatchingBlocks()) matches += block.size;
    const length = this.a.length + this.b.length;
    return length > 0 ? (2.0 * matches) / length : 1.0;
  }
}

/**
 * `difflib.SequenceMatcher(None, a, b).ratio()`.
 *
 * @example
 * ```ts
 * sequenceRatio("abcd", "bcde"); // 0.75
 * ```
 */
export function sequenceRatio(a: string, b: string): number {
  return new SequenceMatcher(a, b).ratio();
}
