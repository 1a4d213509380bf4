/**
 * A port of word2number 1.1's `w2n.word_to_num`, which the Qwen-math `strip_string` calls on
 * every answer (`convert_word_number`): any whitespace-separated word of the text that is a
 * number word makes the whole text a number ("x one" → "1"). Errors leave the text unchanged.
 *
 * @module
 */

import { pyFloatRepr, pySplit, pyStrip } from "../metrics/py_text.ts";

const AMERICAN: Record<string, number | "."> = {
  zero: 0,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
  thirteen: 13,
  fourteen: 14,
  fifteen: 15,
  sixteen: 16,
  seventeen: 17,
  eighteen: 18,
  nineteen: 19,
  twenty: 20,
  thirty: 30,
  forty: 40,
  fifty: 50,
  sixty: 60,
  seventy: 70,
  eighty: 80,
  ninety: 90,
  hundred: 100,
  thousand: 1000,
  million: 1000000,
  billion: 1000000000,
  point: ".",
};

const DECIMAL_WORDS = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
];

class NotANumber extends Error {}

function value(word: string): number {
  const v = AMERICAN[word];
  if (typeof v !== "number") throw new NotANumber(word);
  return v;
}

function numberFormation(words: readonly string[]): number {
  const numbers = words.map(value);
  if (numbers.length === 0) throw new NotANumber("empty group"); // Python: IndexError
  if (numbers.length === 4) return numbers[0] * numbers[1] + numbers[2] + numbers[3];
  if (numbers.length === 3) return numbers[0] * numbers[1] + numbers[2];
  if (numbers.length === 2) {
    return numbers.includes(100) ? numbers[0] * numbers[1] : numbers[0] + numbers[1];
  }
  return numbers[0];
}

/** `get_decimal_sum`: null stands for Python's integer 0 (a non-digit word after "point"). */
function decimalSum(words: readonly string[]): number | null {
  let digits = "";
  for (const word of words) {
    if (!DECIMAL_WORDS.includes(word)) return null;
    digits += String(value(word));
  }
  return Number(`0.${digits}`);
}

function isPyDigitString(s: string): boolean {
  return s.length > 0 && /^\p{Nd}+$/u.test(s);
}

/**
 * `word_to_num(text)` as Python's `str()` of its result, or null where it raises.
 *
 * @example
 * ```ts
 * wordToNum("two hundred and five"); // "205"
 * wordToNum("one point five"); // "1.5"
 * ```
 */
export function wordToNum(text: string): string | null {
  let sentence = text.replaceAll("-", " ").toLowerCase();
  if (isPyDigitString(sentence)) {
    // int() of Unicode digits, printed back in ASCII.
    let out = "";
    for (const ch of sentence) out += String(/\p{Nd}/u.test(ch) ? digitValue(ch) : ch);
    return String(BigInt(out));
  }
  sentence = pyStrip(sentence);
  let clean = pySplit(sentence).filter((word) => word in AMERICAN);
  if (clean.length === 0) return null;
  const count = (w: string) => clean.filter((x) => x === w).length;
  if (count("thousand") > 1 || count("million") > 1 || count("billion") > 1 || count("point") > 1) {
    return null;
  }
  let decimals: string[] = [];
  if (count("point") === 1) {
    const at = clean.indexOf("point");
    decimals = clean.slice(at + 1);
    clean = clean.slice(0, at);
  }
  const billion = clean.indexOf("billion");
  const million = clean.indexOf("million");
  const thousand = clean.indexOf("thousand");
  if (
    (thousand > -1 && (thousand < million || thousand < billion)) ||
    (million > -1 && million < billion)
  ) {
    return null;
  }
  try {
    let total = 0;
    if (clean.length === 1) {
      total += value(clean[0]);
    } else if (clean.length > 1) {
      if (billion > -1) total += numberFormation(clean.slice(0, billion)) * 1000000000;
      if (million > -1) {
        const from = billion > -1 ? billion + 1 : 0;
        total += numberFormation(clean.slice(from, million)) * 1000000;
      }
      if (thousand > -1) {
        const from = million > -1 ? million + 1 : billion > -1 ? billion + 1 : 0;
        total += numberFormation(clean.slice(from, thousand)) * 1000;
      }
      let hundreds = 0;
      const last = clean.length - 1;
      if (thousand > -1 && thousand !== last) hundreds = numberFormation(clean.slice(thousand + 1));
      else if (million > -1 && million !== last) {
        hundreds = numberFormation(clean.slice(million + 1));
      } else if (billion > -1 && billion !== last) {
        hundreds = numberFormation(clean.slice(billion + 1));
      } else if (thousand === -1 && million === -1 && billion === -1) {
        hundreds = numberFormation(clean);
      }
      total += hundreds;
    }
    if (decimals.length > 0) {
      const sum = decimalSum(decimals);
      if (sum !== null) return pyFloatRepr(total + sum);
    }
    return String(total);
  } catch (error) {
    if (error instanceof NotANumber) return null;
    throw error;
  }
}

function digitValue(ch: string): number {
  // Unicode decimal digits come in runs of ten starting at a zero (some runs adjoin).
  let code = ch.codePointAt(0)!;
  let n = 0;
  while (/\p{Nd}/u.test(String.fromCodePoint(code - 1))) {
    code--;
    n++;
  }
  return n % 10;
}

/** The Qwen-math `convert_word_number`: `str(word_to_num(text))`, or `text` where it raises. */
export function convertWordNumber(text: string): string {
  return wordToNum(text) ?? text;
}
