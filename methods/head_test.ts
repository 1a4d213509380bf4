/**
 * `head`: head-importance files (DuoAttention's TSV, JSON) checked against the model and their
 * maximum taken; every entry of a head scores its head's importance, so the global threshold
 * keeps whole heads; the conformance suite.
 */

import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { Model } from "../engine/model.ts";
import { makeRandomModel } from "../engine/random_model.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import { cpuBackend, defineConformanceTests } from "./conformance.ts";
import { head, parseHeadScores } from "./head.ts";
import { prefillWithEviction } from "./phases.ts";
import { parseMethodParams } from "./registry.ts";

Deno.test("head scores: DuoAttention's TSV and JSON, shaped as the model; bad files named", () => {
  const shape = { layers: 2, heads: 3 };
  assertEquals(parseHeadScores("a.tsv", "1\t0\t0.5\n0 1,0\n", shape), [[1, 0, 0.5], [0, 1, 0]]);
  assertEquals(parseHeadScores("a.json", "[[1,0,0.5],[0,1,0]]", shape), [[1, 0, 0.5], [0, 1, 0]]);
  assertThrows(() => parseHeadScores("a.tsv", "1 0 0\n", shape), InputError, "a.tsv: 1 layers");
  assertThrows(
    () => parseHeadScores("a.tsv", "1 0\n0 1 0\n", shape),
    InputError,
    "a.tsv: layer 0 has 2 head scores; the model has 2 layers × 3 KV heads",
  );
  assertThrows(() => parseHeadScores("a.tsv", "1 x 0\n0 1 0\n", shape), InputError, "head 1");
  assertThrows(() => parseHeadScores("a.json", "[1, 2]", shape), InputError, "[layers][KV heads]");
  assertThrows(() => parseHeadScores("a.json", "{", shape), InputError, "a.json: not valid JSON");
});

Deno.test("head: the most important heads are kept whole, the others keep the protected entries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_head_test_" });
  try {
    await makeRandomModel(dir, { arch: "qwen3", seed: 5 });
    const model = await Model.load(dir, { attention: referenceAttention });
    const { numLayers: L, numKvHeads: H } = model.config;
    // Two files; the maximum per head ranks (layer 0, head 1) and (layer 2, head 0) first.
    const a = Array.from({ length: L }, () => Array.from({ length: H }, () => 0.1));
    const b = Array.from({ length: L }, () => Array.from({ length: H }, () => 0.2));
    a[0][1] = 0.9;
    b[L - 1][0] = 0.8;
    await Deno.writeTextFile(`${dir}/a.json`, JSON.stringify(a));
    await Deno.writeTextFile(`${dir}/b.tsv`, b.map((row) => row.join("\t")).join("\n"));
    const scores = `${dir}/a.json,${dir}/b.tsv`;
    const prompt = {
      prefix: Int32Array.from({ length: 4 }, (_, i) => 10 + i),
      context: Int32Array.from({ length: 60 }, (_, i) => 20 + (i * 7) % 200),
    };
    // 2.5 of the L·H heads' context entries: the two best heads, whole. (The pair rule keeps
    // scores strictly above the threshold, and a head's entries all tie: the third is dropped.)
    const keptRatio = 2.5 / (L * H);
    const result = await prefillWithEviction(model, prompt, {
      method: "head",
      params: { scores },
      keptRatio,
    });
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const kept = result.cache.lengths(l)[h];
        const whole = (l === 0 && h === 1) || (l === L - 1 && h === 0);
        assertEquals(kept, whole ? 64 : 4, `layer ${l} head ${h}`);
      }
    }
    assert(
      (await head.artifacts!(parseMethodParams(head, { scores }), { dir, config: model.config }))
        .startsWith("head scores sha256:"),
    );
    // Without `scores`, the model directory's full_attention_heads.tsv.
    await assertRejects(
      () => head.artifacts!(parseMethodParams(head, {}), { dir, config: model.config }),
      InputError,
      `${dir}/full_attention_heads.tsv: cannot read the head scores`,
    );
    await Deno.copyFile(`${dir}/b.tsv`, `${dir}/full_attention_heads.tsv`);
    assertEquals(
      await head.artifacts!(parseMethodParams(head, {}), { dir, config: model.config }),
      await head.artifacts!(parseMethodParams(head, { scores: `${dir}/b.tsv` }), {
        dir,
        config: model.config,
      }),
    );
    await assertRejects(
      () =>
        head.artifacts!(parseMethodParams(head, { scores: `${dir}/none.tsv` }), {
          dir,
          config: model.config,
        }),
      InputError,
      "none.tsv: cannot read the head scores",
    );
    model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

defineConformanceTests(cpuBackend("reference", () => referenceAttention), { methods: ["head"] });
