/**
 * The math grader's `math_equal` (`math/evaluation/grader.py`, Qwen2.5-Math harness as
 * FastKVzip and R-KV run it) and the whole grading of one model output.
 *
 * `math_equal(pred, ref)`: equal strings (stripped, lowered); a gold letter A–E matched by
 * `choice_answer_clean`; numbers (`float()` after removing ","; "x%" → x/100) equal within a
 * relative tolerance of 1e-4 to the reference, its /100 or its ×100; bracket-stripped strings
 * equal; tuples/intervals element by element; pmatrix entries element by element; one "=" on
 * each side as lhs − (rhs); "x = …" against a bare value; finally `symbolic_equal`.
 *
 * `symbolic_equal` here reads both sides with {@linkcode latexToMathjs} instead of
 * latex2sympy/sympy and compares with math.js: the same value for constants (relative 1e-4,
 * as `float(N(a))`), `math.symbolicEqual` (simplification), then agreement at fixed probe points
 * for expressions with variables (the numeric check sympy's `Expr.equals` also makes).
 * Equations compare |lhs − rhs|. Matrices are not compared symbolically.
 *
 * Time limit: the Python harness runs each comparison in a worker process and counts a timeout
 * (3 s in R-KV, 10 s in the spec) as wrong. Here the deadline is checked between the stages
 * and between probe points, and expressions longer than 300 characters skip `symbolicEqual`,
 * so a comparison stops within about one math.js call of its limit and then counts as wrong.
 *
 * @module
 */

import { all, create } from "mathjs";
import { pyLower, pyStrip } from "../metrics/py_text.ts";
import { choiceAnswerClean, extractAnswer, stripString, truncateAtStopWords } from "./answer.ts";
import { latexToMathjs } from "./latex.ts";

const math = create(all, { number: "number" });

/** The spec's per-comparison limit (§6.7). */
export const DEFAULT_MATH_TIME_LIMIT_MS = 10_000;

const FLOAT_LITERAL =
  /^[+-]?(?:(?:\d(?:_?\d)*\.(?:\d(?:_?\d)*)?|\.\d(?:_?\d)*|\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?|inf|infinity|nan)$/i;

function asciiDigits(s: string): string {
  return s.replace(/\p{Nd}/gu, (d) => {
    let code = d.codePointAt(0)!;
    let n = 0;
    while (/\p{Nd}/u.test(String.fromCodePoint(code - 1))) {
      code--;
      n++;
    }
    return String(n % 10);
  });
}

/** Python `float(text)`, or null where it raises. */
export function pyFloat(text: string): number | null {
  const s = asciiDigits(pyStrip(text));
  if (!FLOAT_LITERAL.test(s)) return null;
  const body = s.replace(/^[+-]/, "").toLowerCase();
  const sign = s.startsWith("-") ? -1 : 1;
  if (body === "inf" || body === "infinity") return sign * Infinity;
  if (body === "nan") return NaN;
  return Number(s.replaceAll("_", ""));
}

/** The grader's `parse_digits`: float after removing ","; "x%" (or "x\%") → x/100. */
export function parseDigits(text: string): number | null {
  const num = text.replaceAll(",", "");
  const value = pyFloat(num);
  if (value !== null) return value;
  if (num.endsWith("%")) {
    let rest = num.slice(0, -1);
    if (rest.endsWith("\\")) rest = rest.slice(0, -1);
    const v = pyFloat(rest);
    if (v !== null) return v / 100;
  }
  return null;
}

/** Python `math.isclose(a, b, rel_tol)` with abs_tol 0. */
export function isClose(a: number, b: number, relTol = 1e-4): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const diff = Math.abs(b - a);
  return diff <= Math.abs(relTol * b) || diff <= Math.abs(relTol * a);
}

function strToPmatrix(input: string): string {
  const matches = pyStrip(input).match(/\{[^\n]*,[^\n]*\}/g) ?? [];
  return matches.map((m) => {
    const inner = m.replace(/^[{}]+|[{}]+$/g, "");
    return "\\begin{pmatrix}" + inner.replaceAll(",", "\\") + "\\end{pmatrix}";
  }).join(", ");
}

function stripChars(s: string, chars: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && chars.includes(s[start])) start++;
  while (end > start && chars.includes(s[end - 1])) end--;
  return s.slice(start, end);
}

const LETTERS = ["A", "B", "C", "D", "E"];
const BRACKETED = /^(\(|\[)[^\n]+(\)|\])/;
const PMATRIX_OPEN = ["\\begin{pmatrix}", "\\begin{bmatrix}"];
const PMATRIX_CLOSE = ["\\end{pmatrix}", "\\end{bmatrix}"];

/** Options of {@linkcode mathEqual}. */
export interface MathEqualOptions {
  /** `performance.now()` time after which the comparison gives up (counts as unequal). */
  deadline?: number;
}

function pmatrixRows(s: string): string[] {
  return s.slice("\\begin{pmatrix}".length, -"\\end{pmatrix}".length).split("\\\\").map((line) =>
    pyStrip(line)
  ).filter((line) => line !== "");
}

/**
 * The grader's `math_equal(prediction, reference)` (include_percentage and is_close on).
 *
 * @example
 * ```ts
 * mathEqual("0.5", "\\frac{1}{2}"); // true
 * mathEqual("50", "0.5"); // true: the reference ×100 counts (percentages)
 * ```
 */
export function mathEqual(
  prediction: string | null,
  reference: string | null,
  options: MathEqualOptions = {},
): boolean {
  if (prediction === null || reference === null) return false;
  if (pyLower(pyStrip(prediction)) === pyLower(pyStrip(reference))) return true;
  if (LETTERS.includes(reference) && choiceAnswerClean(prediction) === reference) return true;

  const predNumber = parseDigits(prediction);
  const refNumber = parseDigits(reference);
  if (predNumber !== null && refNumber !== null) {
    for (const item of [refNumber / 100, refNumber, refNumber * 100]) {
      if (isClose(item, predNumber)) return true;
    }
    return false;
  }

  if (prediction === "") return false;
  reference = pyStrip(reference);
  prediction = pyStrip(prediction);

  if (prediction.includes("pmatrix") && !reference.includes("pmatrix")) {
    reference = strToPmatrix(reference);
  }

  let predStr = prediction;
  let refStr = reference;
  if (
    (prediction.startsWith("[") && prediction.endsWith("]") && !reference.startsWith("(")) ||
    (prediction.startsWith("(") && prediction.endsWith(")") && !reference.startsWith("["))
  ) {
    predStr = stripChars(predStr, "[]()");
    refStr = stripChars(refStr, "[]()");
  }
  for (const s of ["{", "}", "(", ")"]) {
    refStr = refStr.replaceAll(s, "");
    predStr = predStr.replaceAll(s, "");
  }
  if (pyLower(predStr) === pyLower(refStr)) return true;

  if (BRACKETED.test(prediction) && BRACKETED.test(reference)) {
    const predParts = prediction.slice(1, -1).split(",");
    const refParts = reference.slice(1, -1).split(",");
    if (
      predParts.length === refParts.length &&
      predParts.map((p, i) => mathEqual(p, refParts[i], options)).every(Boolean)
    ) {
      return true;
    }
  }

  if (
    PMATRIX_OPEN.some((o) => prediction!.startsWith(o)) &&
    PMATRIX_CLOSE.some((c) => prediction!.endsWith(c)) &&
    PMATRIX_OPEN.some((o) => reference!.startsWith(o)) &&
    PMATRIX_CLOSE.some((c) => reference!.endsWith(c))
  ) {
    const predLines = pmatrixRows(prediction);
    const refLines = pmatrixRows(reference);
    let matched = predLines.length === refLines.length;
    for (let row = 0; matched && row < predLines.length; row++) {
      const predParts = predLines[row].split("&");
      const refParts = refLines[row].split("&");
      matched = predParts.length === refParts.length &&
        predParts.map((p, i) => mathEqual(p, refParts[i], options)).every(Boolean);
    }
    if (matched) return true;
  }

  const predEq = prediction.split("=").length - 1;
  const refEq = reference.split("=").length - 1;
  if (predEq === 1 && refEq === 1) {
    const [pl, pr] = prediction.split("=");
    const [rl, rr] = reference.split("=");
    const pred = `${pyStrip(pl)} - (${pyStrip(pr)})`;
    const ref = `${pyStrip(rl)} - (${pyStrip(rr)})`;
    if (symbolicEqual(pred, ref, options) || symbolicEqual(`-(${pred})`, ref, options)) {
      return true;
    }
  } else if (predEq === 1 && pyStrip(prediction.split("=")[0]).length <= 2 && refEq === 0) {
    if (mathEqual(prediction.split("=")[1], reference, options)) return true;
  } else if (refEq === 1 && pyStrip(reference.split("=")[0]).length <= 2 && predEq === 0) {
    if (mathEqual(prediction, reference.split("=")[1], options)) return true;
  }

  return symbolicEqual(prediction, reference, options);
}

interface Compiled {
  text: string;
  evaluate: (scope: Record<string, number>) => number;
  variables: string[];
}

function toReal(value: unknown): number {
  if (typeof value === "number") return value;
  if (math.isComplex(value)) {
    const c = value as { re: number; im: number };
    return Math.abs(c.im) <= 1e-12 * Math.max(1, Math.abs(c.re)) ? c.re : NaN;
  }
  return NaN;
}

function compile(text: string): Compiled | null {
  try {
    const node = math.parse(text);
    const variables = new Set<string>();
    node.traverse((n) => {
      if ((n as { isSymbolNode?: boolean }).isSymbolNode) {
        const name = (n as unknown as { name: string }).name;
        if (name.startsWith("v_")) variables.add(name);
      }
    });
    const code = node.compile();
    return {
      text,
      evaluate: (scope) => {
        try {
          return toReal(code.evaluate({ ...scope }));
        } catch {
          return NaN;
        }
      },
      variables: [...variables],
    };
  } catch {
    return null;
  }
}

/** One side read as an expression, or as |lhs − rhs| when it is an equation. */
function readSide(s: string): Compiled | null {
  for (const candidate of [s.replaceAll("\\\\", "\\"), s]) {
    try {
      const sides = candidate.split("=");
      if (sides.length === 2) {
        return compile(`abs((${latexToMathjs(sides[0])}) - (${latexToMathjs(sides[1])}))`);
      }
      return compile(latexToMathjs(candidate));
    } catch {
      // Any failure to read it means "not equal", as Python's symbolic_equal catches every
      // exception: an answer cut off mid-command must score 0, not stop the sweep.
    }
  }
  return null;
}

const PROBES = [0.3719, 1.1372, 1.7103, 0.5861, 2.2307, 1.4142, 0.8311, 2.9017];
const SYMBOLIC_MAX_CHARS = 300;

function pastDeadline(options: MathEqualOptions): boolean {
  return options.deadline !== undefined && performance.now() > options.deadline;
}

/** `symbolic_equal(a, b)` on math.js (see module doc). */
export function symbolicEqual(a: string, b: string, options: MathEqualOptions = {}): boolean {
  if (pastDeadline(options)) return false;
  const pa = readSide(a);
  const pb = readSide(b);
  if (pa === null || pb === null) return a === b;
  if (pa.text === pb.text) return true;
  const variables = [...new Set([...pa.variables, ...pb.variables])];
  if (variables.length === 0) {
    const x = pa.evaluate({});
    const y = pb.evaluate({});
    return !Number.isNaN(x) && !Number.isNaN(y) && isClose(y, x);
  }
  if (pastDeadline(options)) return false;
  if (pa.text.length + pb.text.length <= SYMBOLIC_MAX_CHARS) {
    try {
      if (math.symbolicEqual(math.parse(pa.text), math.parse(pb.text))) return true;
    } catch {
      // math.js could not simplify: fall through to probing.
    }
  }
  let agreed = 0;
  for (let p = 0; p < PROBES.length; p++) {
    if (pastDeadline(options)) return false;
    const scope: Record<string, number> = {};
    variables.forEach((name, k) => scope[name] = PROBES[(p + 3 * k) % PROBES.length] + 0.1 * k);
    const x = pa.evaluate(scope);
    const y = pb.evaluate(scope);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (!isClose(y, x) && Math.abs(x - y) > 1e-12) return false;
    agreed++;
  }
  return agreed >= 3;
}

function isMultiChoice(answer: string): boolean {
  for (const c of answer) if (!LETTERS.includes(c)) return false;
  return true;
}

/** Options of {@linkcode gradeMathOutput}. */
export interface GradeMathOptions {
  /** Per-comparison limit in milliseconds (default {@linkcode DEFAULT_MATH_TIME_LIMIT_MS}). */
  timeLimitMs?: number;
}

/** What {@linkcode gradeMathOutput} extracted and decided. */
export interface MathGrade {
  /** The normalised predicted answer, null for an empty output. */
  prediction: string | null;
  /** The normalised reference. */
  reference: string;
  /** `math_equal(prediction, reference)` within the time limit. */
  correct: boolean;
}

/**
 * Grade one model output against a reference answer as `eval_math.py` does: stop words,
 * `extract_answer` + `strip_string` (twice, as `run_execute` does), `strip_string` on the
 * reference, the multiple-choice fix-ups, then `math_equal` under the time limit.
 *
 * @example
 * ```ts
 * gradeMathOutput("... so the answer is $\\boxed{2\\sqrt{3}}$.", "\\sqrt{12}").correct; // true
 * ```
 */
export function gradeMathOutput(
  output: string,
  reference: string,
  options: GradeMathOptions = {},
): MathGrade {
  const gt = stripString(reference);
  const code = truncateAtStopWords(output);
  if (code === "" || code === "error") return { prediction: null, reference: gt, correct: false };
  let pred = stripString(extractAnswer(code));
  if (LETTERS.includes(gt) && !LETTERS.includes(pred)) {
    pred = choiceAnswerClean(Array.from(code)[0]);
  } else if (isMultiChoice(gt) && !isMultiChoice(pred)) {
    pred = Array.from(pred).filter((c) => LETTERS.includes(c)).join("");
  }
  const deadline = performance.now() + (options.timeLimitMs ?? DEFAULT_MATH_TIME_LIMIT_MS);
  return { prediction: pred, reference: gt, correct: mathEqual(pred, gt, { deadline }) };
}
