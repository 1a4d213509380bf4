/**
 * Python's string semantics, for ports of Python scorers that must agree with them character
 * for character: `str.strip()`/`str.split()` whitespace (which differs from JavaScript's `\s`:
 * Python counts U+001C–U+001F and U+0085 and not U+FEFF), `\w`/`\b` over Unicode, `\d` over
 * every decimal digit, `string.punctuation`, code-point indexing and `round()`.
 *
 * @module
 */

/** Every character Python's `str.isspace()` (and so `strip()`, `split()`, re's `\s`) accepts. */
export const PY_WHITESPACE =
  "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" +
  "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

const WHITESPACE_SET = new Set(PY_WHITESPACE);

/** A regex character class body matching one Python whitespace character. */
export const PY_WS_CLASS = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a" +
  "\\u2028\\u2029\\u202f\\u205f\\u3000";

/**
 * A regex character class body matching one Python `\w` character (Unicode letters, numbers and
 * the underscore; use with the `u` flag). Python's `\w` is `str.isalnum()` or `_`, which is
 * `\p{L}`, `\p{N}` and a handful of CJK ideographs with numeric values that are `\p{L}` already.
 */
export const PY_WORD_CLASS = "\\p{L}\\p{N}_";

/** Python's `string.punctuation`. */
export const ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

const PUNCTUATION_SET = new Set(ASCII_PUNCTUATION);

/** True when `ch` is one character Python calls whitespace. */
export function isPyWhitespace(ch: string): boolean {
  return WHITESPACE_SET.has(ch);
}

/** True when `ch` is in `string.punctuation`. */
export function isAsciiPunctuation(ch: string): boolean {
  return PUNCTUATION_SET.has(ch);
}

/** Python `s.strip(chars)`; without `chars`, strips Python whitespace. */
export function pyStrip(s: string, chars?: string): string {
  return pyRstrip(pyLstrip(s, chars), chars);
}

/** Python `s.lstrip(chars)`. */
export function pyLstrip(s: string, chars?: string): string {
  const strip = chars === undefined ? WHITESPACE_SET : new Set(chars);
  let start = 0;
  while (start < s.length && strip.has(s[start])) start++;
  return s.slice(start);
}

/** Python `s.rstrip(chars)`. */
export function pyRstrip(s: string, chars?: string): string {
  const strip = chars === undefined ? WHITESPACE_SET : new Set(chars);
  let end = s.length;
  while (end > 0 && strip.has(s[end - 1])) end--;
  return s.slice(0, end);
}

/** Python `s.split()` with no separator: runs of whitespace split, no empty strings. */
export function pySplit(s: string): string[] {
  const words: string[] = [];
  let word = "";
  for (const ch of s) {
    if (WHITESPACE_SET.has(ch)) {
      if (word !== "") words.push(word);
      word = "";
    } else {
      word += ch;
    }
  }
  if (word !== "") words.push(word);
  return words;
}

/** Python `s.lower()` (JavaScript's full Unicode lower-casing, final sigma included). */
export function pyLower(s: string): string {
  return s.toLowerCase();
}

/** The string as Python indexes it: one entry per code point. */
export function codePoints(s: string): string[] {
  return Array.from(s);
}

/** Python `len(s)`: the number of code points. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Python 3 `round(x)` to an integer: halves go to the even neighbour. */
export function pyRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Python `repr(float)`: shortest round-trip digits, `.0` on integers, exponent past 1e16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const abs = Math.abs(x);
  if (abs >= 1e16 || abs < 1e-4) {
    const [mantissa, exponent] = x.toExponential().split("e");
    const exp = Number(exponent);
    const sign = exp < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const text = String(x);
  return Number.isInteger(x) ? `${text}.0` : text;
}

/** Python `s.removeprefix(prefix)`. */
export function removePrefix(s: string, prefix: string): string {
  return s.startsWith(prefix) ? s.slice(prefix.length) : s;
}

/** Python `s.removesuffix(suffix)` (with an empty suffix, `s` itself). */
export function removeSuffix(s: string, suffix: string): string {
  return suffix !== "" && s.endsWith(suffix) ? s.slice(0, s.length - suffix.length) : s;
}
