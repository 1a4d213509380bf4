/**
 * `train-gate` and `convert-gate` through the real cli.ts in a subprocess: a short training run
 * writes gates the loader accepts for the model, with the model's checkpoint fingerprint (kept
 * by --resume) and plain progress lines when stderr is not a terminal; converted official gates
 * name no checkpoint; the progress printer redraws one line on a terminal; bad input (a missing corpus
 * file, --resume without a checkpoint, a pickle with code in it, gates for another model, a
 * corrupt checkpoint) exits 2 with one `error:` line.
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { parseModelConfig } from "../engine/config.ts";
import { checkpointFingerprint } from "../engine/safetensors.ts";
import { MODEL_FINGERPRINT_KEY, readGateFile } from "../methods/gates/gate_file.ts";
import { generatedText, withTinyModel } from "../methods/gates/testing.ts";
import type { StepLog } from "../methods/gates/train.ts";
import { ProgressPrinter } from "./train_gate.ts";
import { gpuTest } from "../kernels/webgpu/test_support.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FIXTURES = `${ROOT}tests/fixtures/gates/`;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runCli(args: string[]): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "cli.ts",
      ...args,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

function assertInputError(result: CliResult, mentions: string[]): void {
  const shown = JSON.stringify(result);
  assertEquals(result.code, 2, `exit code: ${shown}`);
  assert(!result.stderr.includes("    at "), `a stack trace leaked: ${shown}`);
  const lines = result.stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, `expected one line on stderr: ${shown}`);
  assert(lines[0].startsWith("error: "), shown);
  for (const m of mentions) assert(lines[0].includes(m), `stderr should mention "${m}": ${shown}`);
}

const MODEL = { arch: "qwen3" as const, seed: 2, overrides: { max_position_embeddings: 4096 } };

Deno.test("train-gate: a short run writes gates for the model, with its fingerprint and plain progress lines", async () => {
  await withTinyModel(MODEL, async (dir) => {
    await Deno.writeTextFile(`${dir}/a.txt`, generatedText(1, 120));
    await Deno.writeTextFile(`${dir}/b.txt`, generatedText(2, 120));
    const out = `${dir}/gates.safetensors`;
    const options = "--steps 40 --batch-size 128 --chunk 100 --validation-stride 10 " +
      "--log-every 20 --checkpoint-every 20 --threads 1";
    const corpus = [`${dir}/a.txt`, `${dir}/b.txt`];
    const args = ["train-gate", "--model", dir, "--corpus", ...corpus, "--out", out];
    args.push(...options.split(" "));
    const result = await runCli(args);
    assertEquals(result.code, 0, JSON.stringify(result));
    assert(result.stdout.startsWith(`wrote ${out}: gates for 3 layers`), result.stdout);
    const steps = result.stderr.split("\n").filter((l) => l.startsWith("step "));
    assertEquals(steps.map((l) => l.split(/\s+/)[1]), ["1/40", "20/40", "40/40"]);
    assert(steps[0].includes("| val loss"), steps[0]);
    assert(!result.stderr.includes("\r"), "no carriage returns outside a terminal");
    const config = parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
    const { gates, metadata } = await readGateFile(out, { config });
    assertEquals(gates.layers.map((w) => w.layer), [0, 1, 2]);
    assertEquals(metadata.source, "evictbench train-gate");
    assert(Number(metadata.validation_loss) > 0);
    const fingerprint = await checkpointFingerprint(dir);
    assertEquals(metadata[MODEL_FINGERPRINT_KEY], fingerprint);

    // A rerun without --resume would start over on top of the checkpoint: refused.
    assertInputError(await runCli(args), [`${out}.ckpt`, "pass --resume to continue it"]);
    // A rerun with --resume finds the finished checkpoint and the extracted features, and
    // --heldout scores the gates on text they never trained on.
    await Deno.writeTextFile(`${dir}/c.txt`, generatedText(3, 120));
    const again = await runCli([...args, "--resume", "--heldout", `${dir}/c.txt`]);
    assertEquals(again.code, 0, JSON.stringify(again));
    assert(again.stderr.includes("reused"), again.stderr);
    const layerLines = again.stderr.split("\n").filter((l) => l.startsWith("held-out layer "));
    assertEquals(layerLines.length, 3, again.stderr);
    assert(
      /held-out \(\d+ tokens\): accuracy [\d.]+%, Spearman with KVzip -?[\d.]+/.test(again.stdout),
    );
    const reread = await readGateFile(out, { config });
    const accuracy = Number(reread.metadata.heldout_accuracy);
    const rho = Number(reread.metadata.heldout_spearman);
    assert(accuracy >= 0 && accuracy <= 1, `held-out accuracy ${accuracy}`);
    assert(rho >= -1 && rho <= 1, `held-out Spearman ${rho}`);
    assertEquals(JSON.parse(reread.metadata.heldout_layers).length, 3);
    assertEquals(reread.metadata[MODEL_FINGERPRINT_KEY], fingerprint);
  });
});

Deno.test("train-gate: bad input exits 2 with one line", async () => {
  await withTinyModel(MODEL, async (dir) => {
    assertInputError(
      await runCli([
        "train-gate",
        "--model",
        dir,
        "--corpus",
        `${dir}/none.txt`,
        "--out",
        `${dir}/g`,
      ]),
      ["--corpus", "none.txt", "file not found"],
    );
    await Deno.writeTextFile(`${dir}/a.txt`, "some text");
    assertInputError(
      await runCli([
        "train-gate",
        "--model",
        dir,
        "--corpus",
        `${dir}/a.txt`,
        "--out",
        `${dir}/g`,
        "--resume",
      ]),
      ["--resume", "no checkpoint"],
    );
    assertInputError(
      await runCli([
        "train-gate",
        "--model",
        dir,
        "--corpus",
        `${dir}/a.txt`,
        "--out",
        `${dir}/x/g`,
      ]),
      ["--out", "directory does not exist"],
    );
    assertInputError(
      await runCli(["train-gate", "--model", dir, "--corpus", `${dir}/a.txt`, "--out", dir]),
      ["--out", "cannot write the file (it is a directory)"],
    );
    assertInputError(
      await runCli([
        "train-gate",
        "--model",
        dir,
        "--corpus",
        `${dir}/a.txt`,
        "--out",
        `${dir}/g`,
        "--lr",
        "fast",
      ]),
      ["--lr", "fast"],
    );
  });
});

Deno.test("convert-gate: converts the fixture for its model; refuses code, other shapes, corruption", async () => {
  await withTinyModel({ arch: "qwen3", seed: 1 }, async (dir) => {
    const out = `${dir}/gates.safetensors`;
    const ok = await runCli([
      "convert-gate",
      "--in",
      `${FIXTURES}q3_dim16_sink16.pt`,
      "--out",
      out,
      "--model",
      dir,
    ]);
    assertEquals(ok.code, 0, JSON.stringify(ok));
    assert(ok.stdout.includes("gates for layers [0,1,2] (D=40, H=2, G=3, d=16, S=16)"), ok.stdout);
    const meta = (await readGateFile(out)).metadata;
    assertEquals(meta.source, "q3_dim16_sink16.pt");
    assert(meta.training_curves.includes("loss_train"));
    // The pickle does not say which checkpoint its gates were trained on.
    assertEquals(meta[MODEL_FINGERPRINT_KEY], undefined);

    assertInputError(
      await runCli([
        "convert-gate",
        "--in",
        `${FIXTURES}malicious.pt`,
        "--out",
        `${dir}/m.safetensors`,
      ]),
      ["malicious.pt", "system", "code in it"],
    );
    await withTinyModel({ arch: "llama", seed: 1 }, async (llama) => {
      assertInputError(
        await runCli([
          "convert-gate",
          "--in",
          `${FIXTURES}q3_dim16_sink16.pt`,
          "--out",
          `${dir}/l.safetensors`,
          "--model",
          llama,
        ]),
        ["q3_dim16_sink16.pt", "2 KV heads, group 3", "1 KV heads, group 5"],
      );
    });
    const bytes = await Deno.readFile(`${FIXTURES}q3_dim16_sink16.pt`);
    await Deno.writeFile(`${dir}/cut.pt`, bytes.subarray(0, 5000));
    assertInputError(
      await runCli(["convert-gate", "--in", `${dir}/cut.pt`, "--out", `${dir}/c.safetensors`]),
      ["cut.pt", "not a zip archive"],
    );
  });
});

function log(step: number, validation = false): StepLog {
  return {
    step,
    steps: 30,
    loss: 0.25,
    accuracy: 0.9,
    lr: 0.2,
    stepsPerSecond: 10,
    validation: validation ? { loss: 0.3, accuracy: 0.8 } : undefined,
  };
}

Deno.test("progress: plain lines per N steps off a terminal, one redrawn line on it", () => {
  const plain: string[] = [];
  const p = new ProgressPrinter({ write: (s) => plain.push(s), tty: false, every: 10 });
  for (let i = 1; i <= 30; i++) p.step(log(i, i === 1));
  p.done();
  assertEquals(plain.length, 4); // 1 (validation), 10, 20, 30
  assert(plain.every((s) => s.endsWith("\n") && !s.includes("\r")));
  assert(plain[0].includes("| val loss 0.3000 acc 80.0%"));
  assertEquals(plain[1], "step 10/30  loss 0.2500  acc 90.0%  lr 0.2000  10.0 steps/s\n");

  const tty: string[] = [];
  const q = new ProgressPrinter({ write: (s) => tty.push(s), tty: true, every: 10 });
  for (let i = 1; i <= 30; i++) q.step(log(i, i === 1));
  q.done();
  const screen = tty.join("");
  assertEquals(screen.split("\n").length - 1, 2, "validation line and last line stay");
  assert(screen.includes("\r\x1b[Kstep 10/30"));
});

gpuTest(
  "train-gate --backend webgpu: features from the GPU forward train gates the model accepts",
  async () => {
    await withTinyModel(MODEL, async (dir) => {
      await Deno.writeTextFile(`${dir}/a.txt`, generatedText(1, 80));
      const out = `${dir}/gates.safetensors`;
      const args = ["train-gate", "--model", dir, "--corpus", `${dir}/a.txt`, "--out", out];
      const options = "--steps 10 --batch-size 64 --chunk 100 --threads 1 --backend webgpu";
      const result = await runCli([...args, ...options.split(" ")]);
      assertEquals(result.code, 0, JSON.stringify(result));
      assert(result.stderr.includes("on the webgpu backend"), result.stderr);
      const config = parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
      const { gates } = await readGateFile(out, { config });
      assertEquals(gates.layers.map((w) => w.layer), [0, 1, 2]);
    });
  },
);
