/**
 * Answer extraction and string normalisation of the Qwen2.5-Math evaluation harness, as
 * FastKVzip and R-KV run it (`math/evaluation/parser.py`, `eval_math.py`, FastKVzip 7d78b34):
 * stop-word truncation, `extract_answer` (last `boxed{…}` brace-matched; else the text after
 * the last "he answer is"; else after the last "final answer is"; else the last number) and
 * `strip_string` (LaTeX spacing and `\left`/`\right`, `\tfrac`/`\dfrac`, trailing `\text{unit}`,
 * ~170 MathQA unit words, degrees, dollars, percent, word numbers, trailing ".0", `\frac12`,
 * `a/b`), all with Python's regex semantics (Unicode `\w`/`\d`).
 *
 * @module
 */

import { PY_WORD_CLASS, PY_WS_CLASS, pyLstrip, pyRstrip, pyStrip } from "../metrics/py_text.ts";
import { convertWordNumber } from "./word_number.ts";

/** The stop words `eval_math.py` cuts outputs at. */
export const STOP_WORDS: readonly string[] = ["</s>", "<|im_end|>", "<|endoftext|>", "\n题目："];

/** `eval_math.py`: for each stop word in order, if present, keep what precedes it, stripped. */
export function truncateAtStopWords(output: string, stopWords = STOP_WORDS): string {
  for (const stop of stopWords) {
    if (output.includes(stop)) output = pyStrip(output.split(stop)[0]);
  }
  return output;
}

/** The content of the last `boxed{…}` (brace-matched; unclosed → the rest), or `$`-cut text. */
export function lastBoxed(text: string): string {
  const ans = text.split("boxed").at(-1)!;
  if (ans.length === 0) return "";
  if (ans[0] !== "{") return pyStrip(ans.split("$")[0]);
  let depth = 1;
  let out = "";
  for (const ch of ans.slice(1)) {
    if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) break;
    out += ch;
  }
  return out;
}

const LAST_NUMBER = /-?\p{Nd}*\.?\p{Nd}+/gu;
const NEWLINE_RUN = new RegExp(`\\n[${PY_WS_CLASS}]*`, "gu");

/**
 * `extract_answer(pred_str, data_name)` for the free-form math sets (no multiple choice).
 *
 * @example
 * ```ts
 * extractAnswer("so the total is \\boxed{\\frac{1}{2}}."); // "\\frac{1}{2}"
 * ```
 */
export function extractAnswer(output: string): string {
  const text = output.replaceAll("\u043a\u0438", "");
  let pred: string;
  if (text.includes("final answer is $") && text.includes("$. I hope")) {
    const tmp = text.split("final answer is $").slice(1).join("final answer is $");
    pred = pyStrip(tmp.split("$. I hope")[0]);
  } else if (text.includes("boxed")) {
    if (text.split("boxed").at(-1)!.length === 0) return "";
    pred = lastBoxed(text);
  } else if (text.includes("he answer is")) {
    pred = pyStrip(text.split("he answer is").at(-1)!);
  } else if (text.includes("final answer is")) {
    pred = pyStrip(text.split("final answer is").at(-1)!);
  } else if (text.includes("答案是")) {
    pred = pyStrip(pyStrip(text.split("答案是")[1]).split("\n\n")[0]);
  } else {
    const numbers = text.replaceAll(",", "").match(LAST_NUMBER);
    pred = numbers === null ? "" : numbers.at(-1)!;
  }
  pred = pred.replace(NEWLINE_RUN, "");
  if (pred !== "" && pred[0] === ":") pred = pred.slice(1);
  if (pred !== "" && pred.at(-1) === ".") pred = pred.slice(0, -1);
  if (pred !== "" && pred.at(-1) === "/") pred = pred.slice(0, -1);
  return stripString(pred);
}

/** MathQA unit words `strip_string` removes when they stand alone (then each plus "s"). */
// deno-fmt-ignore
const BASE_UNIT_TEXTS = [
  "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .",
  "monkey", "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm",
  "lt", "gain", "ab", "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t",
  "a", "h", "no change", "men", "soldier", "pie", "bc", "excess", "st", "inches", "noon",
  "percent", "by", "gal", "kmh", "c", "acre", "rise", "a . m", "th", "π r 2", "sq", "mark", "l",
  "toy", "coin", "sq . m", "gallon", "° f", "profit", "minw", "yr", "women", "feet", "am", "pm",
  "hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s", "ohm",
  "number", "kmph", "day", "hour", "minute", "min", "second", "man", "woman", "sec", "cube", "mt",
  "sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m", "cm 2", "rs .", "rs",
  "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure", "year",
  "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter",
  "inch",
];

const UNIT_TEXTS = [...BASE_UNIT_TEXTS, ...BASE_UNIT_TEXTS.map((t) => t + "s")];

// Python's "." (no DOTALL) is anything but "\n"; JavaScript's also excludes "\r", U+2028…
const PY_DOT = "[^\\n]";
const NON_WORD = `[^${PY_WORD_CLASS}]`;

const UNIT_PATTERNS = UNIT_TEXTS.map((unit) =>
  new RegExp(`(^|${NON_WORD})${unit.replaceAll(".", PY_DOT)}($|${NON_WORD})`, "gu")
);

/** `_fix_fracs`: `\frac12` → `\frac{1}{2}`, `\frac1{72}` → `\frac{1}{72}` (code points). */
export function fixFracs(string: string): string {
  const substrs = string.split("\\frac");
  let out = substrs[0];
  for (const substr of substrs.slice(1)) {
    out += "\\frac";
    const cps = Array.from(substr);
    if (cps.length > 0 && cps[0] === "{") {
      out += substr;
      continue;
    }
    if (cps.length < 2) return string;
    const [a, b] = cps;
    const post = cps.slice(2).join("");
    out += b !== "{" ? `{${a}}{${b}}${post}` : `{${a}}${b}${post}`;
  }
  return out;
}

const CANONICAL_INT = /^(?:0|-?[1-9][0-9]*)$/;

/** `_fix_a_slash_b`: "3/4" → `\frac{3}{4}` when both sides round-trip through `int()`. */
export function fixASlashB(string: string): string {
  const parts = string.split("/");
  if (parts.length !== 2) return string;
  const [a, b] = parts;
  const ok = (side: string) => side.includes("sqrt") || CANONICAL_INT.test(side);
  return ok(a) && ok(b) ? `\\frac{${a}}{${b}}` : string;
}

const SQRT_WORD = new RegExp(`\\\\sqrt([${PY_WORD_CLASS}]+)`, "gu");

/** `_fix_sqrt`: `\sqrt3` → `\sqrt{3}`. */
export function fixSqrt(string: string): string {
  return string.replace(SQRT_WORD, "\\sqrt{$1}");
}

/**
 * `strip_string(string, skip_unit=False)`.
 *
 * @example
 * ```ts
 * stripString("\\dfrac{1}{2}\\text{ cm}"); // "\\frac{1}{2}"
 * stripString("50\\%"); // "50"
 * ```
 */
export function stripString(input: string, skipUnit = false): string {
  let string = pyStrip(input);
  string = string.replaceAll("\n", "");
  string = pyRstrip(string, ".");
  string = string.replaceAll("\\!", "");
  string = string.replace(/\\begin\{array\}\{[^\n]*?\}/g, "\\begin{pmatrix}");
  string = string.replace(/\\end\{array\}/g, "\\end{pmatrix}");
  string = string.replaceAll("bmatrix", "pmatrix");
  string = string.replaceAll("tfrac", "frac");
  string = string.replaceAll("dfrac", "frac");
  string = string.replaceAll("\\neq", "\\ne").replaceAll("\\leq", "\\le").replaceAll(
    "\\geq",
    "\\ge",
  );
  string = string.replaceAll("\\left", "");
  string = string.replaceAll("\\right", "");
  string = string.replaceAll("\\{", "{");
  string = string.replaceAll("\\}", "}");

  // A trailing \text{unit}, unless it is the whole answer.
  const withoutUnit = pyStrip(string.replace(/\\text\{[^\n]*?\}$/, ""));
  if (withoutUnit !== "" && withoutUnit !== string) string = withoutUnit;

  if (!skipUnit) {
    for (let pass = 0; pass < 2; pass++) {
      for (const pattern of UNIT_PATTERNS) {
        const next = string.replace(pattern, "$1$2");
        if (next !== "") string = next;
      }
    }
  }

  string = string.replaceAll("^{\\circ}", "");
  string = string.replaceAll("^\\circ", "");
  string = string.replaceAll("\\$", "");
  string = string.replaceAll("$", "");
  string = string.replaceAll("\\(", "").replaceAll("\\)", "");
  string = convertWordNumber(string);
  string = string.replace(/\\text\{([^\n]*?)\}/g, "$1");
  for (const key of ["x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"]) {
    string = string.replaceAll(key, "");
  }
  string = string.replaceAll("\\emptyset", "{}");
  string = string.replaceAll("(-\\infty,\\infty)", "\\mathbb{R}");
  string = string.replaceAll("\\%", "");
  string = string.replaceAll("%", "");
  string = string.replaceAll(" .", " 0.");
  string = string.replaceAll("{.", "{0.");
  // (Python then strips "{…}", "(…)", "[…]" from strings that are also isalnum(), which none
  // with a bracket is: that branch never runs.)
  string = string.replaceAll("infinity", "\\infty");
  if (!string.includes("\\infty")) string = string.replaceAll("inf", "\\infty");
  string = string.replaceAll("+\\inity", "\\infty");
  string = string.replaceAll("and", "");
  string = string.replaceAll("\\mathbf", "");
  string = string.replace(/\\mbox\{[^\n]*?\}/g, "");
  if (string.includes("j") && !string.includes("i")) string = string.replaceAll("j", "i");
  string = string.replace(/(\p{Nd}+)\.0*([^\p{Nd}])/gu, "$1$2");
  string = string.replace(/(\p{Nd}+)\.0*$/u, "$1");
  if (string.length === 0) return string;
  if (string[0] === ".") string = "0" + string;
  const sides = string.split("=");
  if (sides.length === 2 && Array.from(sides[0]).length <= 2) string = sides[1];
  string = fixSqrt(string);
  string = string.replaceAll(" ", "");
  string = fixFracs(string);
  string = fixASlashB(string);
  return string;
}

const CHOICE_LETTER = /(?<![\p{L}\p{N}_])(A|B|C|D|E)(?![\p{L}\p{N}_])/gu;

/** The grader's `choice_answer_clean`: the last standalone letter A–E, else the cleaned text. */
export function choiceAnswerClean(pred: string): string {
  pred = pyLstrip(pyStrip(pyRstrip(pyRstrip(pyStrip(pred, "\n"), "."), "/"), " "), ":");
  const letters = pred.toUpperCase().match(CHOICE_LETTER);
  const out = letters !== null ? letters.at(-1)! : pyStrip(pyStrip(pred), ".");
  return pyRstrip(pyRstrip(out, "."), "/");
}
