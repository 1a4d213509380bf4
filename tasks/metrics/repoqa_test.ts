import { assertEquals } from "../../tests/assert.ts";
import { getMetric } from "./mod.ts";
import { codeBlocks, evaluateNeedle, extractFirstFunction, sanitizeOutput } from "./repoqa.ts";

Deno.test("fenced blocks: language tag optional, ``` must start a line", () => {
  const text = "Sure:\n```python\na = 1\n```\ntext ``` not a fence\n```\nb = 2\n```";
  assertEquals(codeBlocks(text), ["a = 1\n", "b = 2\n"]);
  assertEquals(codeBlocks("```js\nx\r```"), []);
  assertEquals(sanitizeOutput("  no fences here \n", "python"), "no fences here");
});

Deno.test("python: first def, body by indentation, triple-quoted strings kept whole", () => {
  const block = [
    "import os",
    "@decorator",
    "def load(path: str,",
    "         mode: str = 'r') -> dict[str, int]:",
    '    """Read it.',
    "",
    "Dedented docstring line.",
    '    """',
    "    with open(path) as f:",
    "        return parse(f)",
    "",
    "    # trailing comment inside",
    "",
    "print(load('x'))",
  ].join("\n");
  assertEquals(
    extractFirstFunction(block, "python"),
    block.slice(block.indexOf("def load"), block.indexOf("\n\nprint")),
  );
  assertEquals(
    extractFirstFunction("async def f(): return 1\nx = 2", "python"),
    "async def f(): return 1",
  );
  assertEquals(extractFirstFunction("x = 1", "python"), null);
});

Deno.test("brace languages: header regex, brackets outside strings and comments", () => {
  const java = [
    "class A {",
    "  @Override",
    "  public static <T> List<T> pick(List<T> xs, int n) throws IOException {",
    '    String s = "}{"; // }',
    "    /* { */ return xs.subList(0, n);",
    "  }",
    "  int other() { return 1; }",
    "}",
  ].join("\n");
  const javaFn = extractFirstFunction(java, "java")!;
  assertEquals(javaFn.startsWith("@Override\n  public static <T> List<T> pick("), true);
  assertEquals(javaFn.endsWith("return xs.subList(0, n);\n  }"), true);

  const rust =
    "use x;\npub(crate) async fn run<'a>(s: &'a str) -> Result<(), E> {\n    let c = '}';\n    Ok(())\n}\nfn next() {}";
  assertEquals(
    extractFirstFunction(rust, "rust"),
    "pub(crate) async fn run<'a>(s: &'a str) -> Result<(), E> {\n    let c = '}';\n    Ok(())\n}",
  );

  const go = "func (r *T) Method() {}\nfunc Add(a, b int) int {\n\treturn a + b\n}\n";
  assertEquals(extractFirstFunction(go, "go"), "func Add(a, b int) int {\n\treturn a + b\n}");

  const ts =
    "const f = function g() {};\nexport async function load(url: string): Promise<void> {\n  await fetch(`${url}}`);\n}\n";
  assertEquals(
    extractFirstFunction(ts, "typescript"),
    "async function load(url: string): Promise<void> {\n  await fetch(`${url}}`);\n}",
  );

  const cpp = "int add(int a, int b);\nstatic int add(int a, int b) {\n  return a + b;\n}\n";
  assertEquals(
    extractFirstFunction(cpp, "cpp"),
    "static int add(int a, int b) {\n  return a + b;\n}",
  );
  assertEquals(extractFirstFunction("return foo(x) {", "cpp"), null);
  assertEquals(extractFirstFunction("fn f() {}", "cobol"), null);
});

Deno.test("extraction feeds the needle comparison: surrounding code no longer costs BLEU", () => {
  const gold =
    "def gold(a, b):\n    total = a + b\n    if total > 10:\n        return total * 2\n    return total - 1";
  const other = "def other(x):\n    return [i for i in x if i]";
  const needles = [{ name: "gold", code: gold }, { name: "other", code: other }];
  const noisy = "```python\nimport math\nx = 3\n" + gold + "\n\nprint(gold(1, 2))\nprint(x)\n```";
  const withExtraction = evaluateNeedle(noisy, { goldName: "gold", needles, lang: "python" });
  const firstBlock = evaluateNeedle(noisy, {
    goldName: "gold",
    needles,
    lang: "python",
    extract: false,
  });
  assertEquals(withExtraction.bestSimilarity, 1);
  assertEquals(withExtraction.pass, true);
  assertEquals(firstBlock.bestSimilarity < 0.8, true);
  const meta = { needles, funcName: "gold", lang: "python" };
  assertEquals(getMetric("repoqa_score").score(noisy, [gold], { meta }), 1);
  assertEquals(
    getMetric("repoqa_score").score("```python\n" + other + "\n```", [gold], { meta }),
    0,
  );
  // Without meta.needles the gold function is the only candidate.
  assertEquals(getMetric("repoqa_score").score(gold, [gold]), 1);
  assertEquals(getMetric("repoqa_score").score("   ", [gold]), 0);
});
