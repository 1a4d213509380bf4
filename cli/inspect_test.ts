/**
 * `evictbench inspect` end to end in a subprocess: the JSON it writes for a tiny model, and
 * bad input (unknown method, ratio out of range, negative window, bad --param) exiting 2 with
 * one `error:` line and no file left behind.
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { makeRandomModel } from "../engine/random_model.ts";
import { testAdapter } from "../kernels/webgpu/test_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function inspect(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli.ts", "inspect", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("inspect writes every head's positions, scores and kept positions; bad input exits 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_inspect_test_" });
  try {
    const model = `${dir}/model`;
    await makeRandomModel(model, { arch: "qwen2", seed: 8 });
    const out = `${dir}/out.json`;
    const ids = Array.from({ length: 24 }, (_, i) => (i * 11) % 200).join(",");
    const ok = await inspect([
      "--model",
      model,
      "--method",
      "snapkv",
      "--param",
      "window=4",
      "--param",
      "kernel=3",
      "--kept",
      "0.5",
      "--policy",
      "global",
      "--prefix",
      "4",
      "--ids",
      ids,
      "--out",
      out,
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    const json = JSON.parse(await Deno.readTextFile(out));
    assertEquals(
      ok.stdout.trim(),
      `snapkv at kept ratio 0.5: ${json.report.evicted} of ${json.report.population} entries up ` +
        `for decision evicted, kept ratio achieved ${json.report.keptRatioAchieved.toFixed(3)}; ` +
        `${json.layers.length} layers × ${json.layers[0].heads.length} KV heads written to ${out}`,
    );
    assertEquals(json.method, "snapkv");
    assertEquals(json.params.window, 4);
    assertEquals(json.policy, { policy: "global", safeguard: 0 });
    assertEquals(json.tokens, 24);
    assertEquals(json.layers.length, 3);
    let kept = 0;
    for (const layer of json.layers) {
      assertEquals(layer.heads.length, 2);
      for (const head of layer.heads) {
        assertEquals(head.positions.length, 24);
        assertEquals(head.scores.length, 24);
        assertEquals(head.kept.slice(0, 4), [0, 1, 2, 3], "the prefix is kept");
        assert(head.kept.every((p: number) => head.positions.includes(p)));
        kept += head.kept.length - 4;
      }
    }
    // Global pair rule over N = 3·2·20 context entries at r = 0.5: at most 59 kept.
    assert(kept <= 59 && kept > 40, `kept ${kept}`);
    assertEquals(json.report.keptRatioAchieved, kept / 120);

    const base = ["--model", model, "--ids", "1,2,3", "--out", `${dir}/bad.json`];
    const bad: [string[], string][] = [
      [["--method", "snapk", "--kept", "0.5"], 'did you mean "snapkv"'],
      [["--method", "snapkv", "--kept", "0"], "--kept"],
      [["--method", "snapkv", "--kept", "1.2"], "--kept"],
      [["--method", "snapkv", "--kept", "0.5", "--window", "-3"], "--window"],
      [["--method", "snapkv", "--kept", "0.5", "--param", "pool=median"], 'parameter "pool"'],
      [["--method", "snapkv", "--kept", "0.5", "--param", "nope=1"], 'unknown parameter "nope"'],
      [["--method", "snapkv", "--kept", "0.5", "--policy", "uniform"], "--policy"],
    ];
    for (const [args, mention] of bad) {
      const r = await inspect([...base, ...args]);
      const lines = r.stderr.trim().split("\n");
      assertEquals(r.code, 2, JSON.stringify(r));
      assertEquals(lines.length, 1, r.stderr);
      assert(lines[0].startsWith("error: ") && lines[0].includes(mention), r.stderr);
      assert(!(await exists(`${dir}/bad.json`)), "no output file is left");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "inspect --backend webgpu keeps what the CPU backend keeps",
  ignore: testAdapter === null && Deno.env.get("CI") !== "true",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "evictbench_inspect_test_" });
    try {
      const model = `${dir}/model`;
      await makeRandomModel(model, { arch: "qwen3", seed: 9 });
      const ids = Array.from({ length: 40 }, (_, i) => (i * 7) % 200).join(",");
      const kept: Record<string, number[][]> = {};
      for (const backend of ["cpu", "webgpu"]) {
        const out = `${dir}/${backend}.json`;
        const args = ["--model", model, "--method", "snapkv", "--kept", "0.4", "--ids", ids];
        const run = await inspect([...args, "--out", out, "--backend", backend]);
        assertEquals(run.code, 0, run.stderr);
        const json = JSON.parse(await Deno.readTextFile(out));
        assertEquals(json.backend, backend);
        kept[backend] = json.layers.flatMap((l: { heads: { kept: number[] }[] }) =>
          l.heads.map((h) => h.kept)
        );
      }
      assertEquals(kept.webgpu, kept.cpu);
      assert(kept.cpu.some((k) => k.length < 40), "something was evicted");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
