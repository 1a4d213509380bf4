import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { getMetric } from "../metrics/mod.ts";
import {
  extractAnswer,
  gradeMathOutput,
  LatexError,
  latexToMathjs,
  mathEqual,
  parseDigits,
  pyFloat,
  stripString,
  symbolicEqual,
  truncateAtStopWords,
  wordToNum,
} from "./mod.ts";

const FIXTURE = new URL("../../tests/fixtures/metrics/metric_cases.json", import.meta.url);
const cases = JSON.parse(await Deno.readTextFile(FIXTURE));

Deno.test("strip_string matches the Python harness on every fixture input", () => {
  for (const [input, expected] of cases.strip_string) {
    assertEquals(stripString(input), expected, JSON.stringify(input));
  }
});

Deno.test("extract_answer matches the Python harness", () => {
  for (const [input, expected] of cases.extract_answer) {
    assertEquals(extractAnswer(input), expected, JSON.stringify(input));
  }
});

Deno.test("the whole grading of an output matches eval_math.py where Python decides it", () => {
  for (const c of cases.math) {
    const grade = gradeMathOutput(c.output, c.reference);
    assertEquals(grade.prediction, c.prediction, `prediction of ${JSON.stringify(c.output)}`);
    assertEquals(grade.reference, c.gt, `reference ${JSON.stringify(c.reference)}`);
    assertEquals(grade.correct, c.expected, `${JSON.stringify(c.output)} vs ${c.reference}`);
  }
});

// sympy/latex2sympy verdicts, pinned by hand (the fixture script cannot run those parsers).
const SYMBOLIC: [string, string, boolean][] = [
  ["2\\sqrt{3}", "\\sqrt{12}", true],
  ["\\frac{1}{2}", "0.5", true],
  ["0.5", "\\frac{1}{2}", true],
  ["\\frac{3}{4}", "0.75", true],
  ["(x+1)^2", "x^2+2x+1", true],
  ["x^2", "x^3", false],
  ["\\pi", "3.14159", true],
  ["\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", true],
  ["2x", "x*2", true],
  ["x+1", "1+x", true],
  ["\\frac{1}{3}", "0.333", false],
  ["0.3333", "\\frac{1}{3}", true],
  ["\\sqrt[3]{8}", "2", true],
  ["e^{2}", "e^2", true],
  ["3\\pi/4", "\\frac{3\\pi}{4}", true],
  ["\\sin(\\pi/6)", "\\frac12", true],
  ["5!", "120", true],
  ["\\frac{x}{y}", "\\frac{y}{x}", false],
  // strip_string drops "a" as a MathQA unit word, leaving "\frac{}{b}" and "\frac{b}{}",
  // which math_equal's brace-stripped comparison then calls equal.
  ["\\frac{a}{b}", "\\frac{b}{a}", true],
];

Deno.test("symbolic equality (math.js stand-in for sympy) on worked examples", () => {
  for (const [a, b, expected] of SYMBOLIC) {
    assertEquals(mathEqual(stripString(a), stripString(b)), expected, `${a} vs ${b}`);
  }
  assert(gradeMathOutput("so it is $\\boxed{2\\sqrt{3}}$.", "\\sqrt{12}").correct);
  assert(gradeMathOutput("The answer is 0.5", "\\frac{1}{2}").correct);
});

Deno.test("equations and tuples compare part by part", () => {
  assert(mathEqual("y=2x+1", "y=1+2x"));
  assert(mathEqual("2x+1=y", "y=2x+1"));
  assert(mathEqual("(1,\\frac{1}{2})", "(1,0.5)"));
  assert(!mathEqual("(1,2)", "(2,1)"));
});

Deno.test("the time limit turns a slow comparison into 'wrong'", () => {
  const past = performance.now() - 1;
  assertEquals(symbolicEqual("x+1", "1+x", { deadline: past }), false);
  assertEquals(mathEqual("2\\sqrt{3}", "\\sqrt{12}", { deadline: past }), false);
  // Numeric and string checks come before the limit matters.
  assertEquals(mathEqual("2", "2.0", { deadline: past }), true);
  const t0 = performance.now();
  gradeMathOutput("\\boxed{" + "x+".repeat(200) + "1}", "x", { timeLimitMs: 50 });
  assert(performance.now() - t0 < 2000, "bounded");
});

Deno.test("stop words, Python float() and parse_digits", () => {
  assertEquals(truncateAtStopWords("a 1<|im_end|> 2</s>"), "a 1");
  assertEquals(truncateAtStopWords("x\n题目：y"), "x");
  assertEquals(pyFloat(" 1_000.5 "), 1000.5);
  assertEquals(pyFloat("1__0"), null);
  assertEquals(pyFloat("-inf"), -Infinity);
  assertEquals(pyFloat("\u0663"), 3);
  assertEquals(parseDigits("1,234"), 1234);
  assertEquals(parseDigits("50\\%"), 0.5);
  assertEquals(parseDigits("abc"), null);
});

Deno.test("word2number port", () => {
  assertEquals(wordToNum("two hundred and five"), "205");
  assertEquals(wordToNum("one point five"), "1.5");
  assertEquals(wordToNum("one point zero"), "1.0");
  assertEquals(wordToNum("three million two thousand one"), "3002001");
  assertEquals(wordToNum("thousand thousand"), null);
  assertEquals(wordToNum("no numbers"), null);
  assertEquals(wordToNum("x one"), "1");
  assertEquals(wordToNum("twenty-one"), "21");
});

Deno.test("LaTeX reader: what it reads and what it refuses", () => {
  assertEquals(latexToMathjs("2\\sqrt{3}"), "(2 * sqrt(3))");
  assertEquals(latexToMathjs("\\frac12"), "(1 / 2)");
  assertEquals(latexToMathjs("x^23"), "((v_x ^ 2) * 3)");
  assertEquals(latexToMathjs("e^{i\\pi}"), "(v_e ^ ((v_i * pi)))");
  assertEquals(latexToMathjs("x_{10}+1"), "(v_x_10 + 1)");
  assertThrows(() => latexToMathjs("[1, 2)"), LatexError);
  assertThrows(() => latexToMathjs("\\pm 3"), LatexError);
  assertThrows(() => latexToMathjs("x < 3"), LatexError);
});

Deno.test("math_equal metric: full outputs, several references, empty output", () => {
  const metric = getMetric("math_equal");
  assertEquals(metric.score("Thus \\boxed{\\dfrac{3}{4}}.", ["0.75"]), 1);
  assertEquals(metric.score("Thus \\boxed{7}.", ["8", "7"]), 1);
  assertEquals(metric.score("", ["7"]), 0);
  assertEquals(metric.score("<|im_end|>", ["7"]), 0);
  assertEquals(metric.score("the answer is 7", ["7"], { meta: { timeLimitMs: 5 } }), 1);
});

Deno.test("an output cut off mid-command grades as wrong, never throws", () => {
  for (
    const [output, reference] of [
      ["so the area is \\boxed{\\", "5"],
      ["The answer is 12 \\", "12"],
      ["\\boxed{\\text{(C)}}", "C"],
    ]
  ) {
    assertEquals(gradeMathOutput(output, reference).correct, false, output);
  }
});
