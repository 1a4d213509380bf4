/**
 * Token choice: HF's temperature, top-k and top-p warpers written out plainly over a full sort,
 * against the chooser's shortcut; seeded draws that repeat and follow the distribution.
 */

import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { seededNormal } from "../kernels/random.ts";
import { argmax, nucleus, type Sampling, tokenChooser } from "./sampling.ts";

/** HF's warpers on a full ascending sort, as `TopKLogitsWarper` and `TopPLogitsWarper` write them. */
function hfKept(logits: Float32Array, s: Omit<Sampling, "seed">): number[] {
  let scores = Array.from(logits, (x) => x / s.temperature);
  const k = s.topK ?? 0;
  if (k > 0) {
    const kth = [...scores].sort((a, b) => b - a)[Math.min(k, scores.length) - 1];
    scores = scores.map((x) => (x < kth ? -Infinity : x));
  }
  const ascending = scores.map((x, i) => [x, i] as const).sort((a, b) =>
    a[0] - b[0] || b[1] - a[1]
  );
  const best = Math.max(...scores);
  const exp = ascending.map(([x]) => Math.exp(x - best));
  const total = exp.reduce((a, b) => a + b, 0);
  const kept: number[] = [];
  let cumulative = 0;
  ascending.forEach(([x, i], j) => {
    cumulative += exp[j] / total;
    // Removed: cumulative ≤ 1 − top_p (the most likely token always stays).
    if (x > -Infinity && (cumulative > 1 - s.topP || j === ascending.length - 1)) kept.push(i);
  });
  return kept.sort((a, b) => a - b);
}

Deno.test("nucleus keeps what HF's temperature, top-k and top-p warpers keep", () => {
  const normal = seededNormal(5);
  const cases: Omit<Sampling, "seed">[] = [
    { temperature: 0.6, topP: 0.95 },
    { temperature: 1, topP: 0.5 },
    { temperature: 0.6, topP: 0.95, topK: 20 },
    { temperature: 2, topP: 1, topK: 3 },
    { temperature: 0.05, topP: 0.9 },
  ];
  for (const scale of [0.5, 3, 12]) {
    const logits = Float32Array.from({ length: 5000 }, () => scale * normal());
    for (const s of cases) {
      const { ids, weights } = nucleus(logits, s);
      assertEquals([...ids].sort((a, b) => a - b), hfKept(logits, s), JSON.stringify({ scale, s }));
      for (let i = 1; i < weights.length; i++) {
        assert(weights[i] <= weights[i - 1], "most likely first");
      }
    }
  }
  // Ties with the k-th largest stay, as HF keeps them.
  const tied = Float32Array.of(3, 1, 1, 1, 0);
  assertEquals([...nucleus(tied, { temperature: 1, topP: 1, topK: 2 }).ids], [0, 1, 2, 3]);
});

Deno.test("seeded sampling repeats, differs across seeds, and follows the distribution", () => {
  const logits = Float32Array.from([0, Math.log(3), -Infinity, Math.log(6)]); // p = 0.1, 0.3, 0, 0.6
  const run = (seed: number) => {
    const choose = tokenChooser({ temperature: 1, topP: 1, seed });
    return Array.from({ length: 4000 }, () => choose(logits));
  };
  assertEquals(run(7), run(7));
  assert(run(7).join() !== run(8).join());
  const counts = [0, 0, 0, 0];
  for (const id of run(7)) counts[id]++;
  assertEquals(counts[2], 0, "a token of probability 0 is never drawn");
  for (const [id, p] of [[0, 0.1], [1, 0.3], [3, 0.6]]) {
    // 4000 draws: the standard deviation of a share is at most 0.008.
    assert(Math.abs(counts[id] / 4000 - p) < 0.03, `token ${id}: ${counts[id]} of 4000`);
  }
  // top-p 0.5 keeps only the most likely token here (0.6 ≥ 0.5).
  const nucleusOnly = tokenChooser({ temperature: 1, topP: 0.5, seed: 1 });
  for (let i = 0; i < 50; i++) assertEquals(nucleusOnly(logits), 3);
});

Deno.test("greedy without sampling; out-of-range settings are named", () => {
  assertEquals(tokenChooser(), argmax);
  for (
    const [bad, name] of [
      [{ temperature: 0, topP: 0.9, seed: 0 }, "temperature"],
      [{ temperature: 1, topP: 1.5, seed: 0 }, "topP"],
      [{ temperature: 1, topP: 0.9, topK: -1, seed: 0 }, "topK"],
      [{ temperature: 1, topP: 0.9, seed: 0.5 }, "seed"],
    ] as const
  ) {
    assertThrows(() => tokenChooser(bad), RangeError, `sampling: ${name}`);
  }
});

Deno.test("top-k applies when exactly k tokens clear the candidate floor", () => {
  const logits = new Float32Array(200_000).fill(Math.log(0.9e-7));
  logits[0] = 0;
  logits[1] = Math.log(0.04);
  const { ids } = nucleus(logits, { temperature: 1, topP: 0.95, topK: 2 });
  // HF: keep tokens 0 and 1, then top-p over those two alone: token 0 (0.96) reaches 0.95.
  assertEquals([...ids], [0]);
});
