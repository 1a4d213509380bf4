import { assertAlmostEquals, assertEquals } from "../../tests/assert.ts";
import { ranks, spearman } from "./heldout.ts";

Deno.test("ranks: ties share their mean rank", () => {
  assertEquals([...ranks([10, 30, 20, 30])], [0, 2.5, 1, 2.5]);
});

Deno.test("spearman: monotone maps give ±1, a tied case its hand-computed value", () => {
  const a = [1, 2, 3, 4, 5, 6];
  assertAlmostEquals(spearman(a, a.map((x) => x ** 3)), 1, 1e-12);
  assertAlmostEquals(spearman(a, a.map((x) => -Math.exp(x))), -1, 1e-12);
  // Ranks [0, 1, 2, 3] and [0.5, 0.5, 3, 2]: centred products sum to 3.5, squares to 5 and 4.5.
  assertAlmostEquals(spearman([1, 2, 3, 4], [5, 5, 9, 7]), 3.5 / Math.sqrt(5 * 4.5), 1e-12);
});
