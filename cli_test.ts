/**
 * The CLI end to end: the real `cli.ts` in a subprocess. Bad input (damaged checkpoints,
 * contradicting configs, missing tokenizers, bad ids, unwritable outputs, unknown commands)
 * exits 2 with exactly one `error: ` line naming the culprit and no stack trace; good input
 * writes the logits the engine computes, generates and lists.
 */

import { assert, assertEquals, assertThrows } from "./tests/assert.ts";
import { generate } from "./engine/generate.ts";
import { Model } from "./engine/model.ts";
import { makeRandomModel, type RandomModelOptions } from "./engine/random_model.ts";
import { ARCHITECTURES } from "./engine/types.ts";
import { OrtAttention } from "./kernels/attention_ort.ts";
import { editCheckpoint } from "./tests/checkpoints.ts";
import { buildProgram, collectList, commaList } from "./cli.ts";
import { type Command, CommanderError } from "commander";

const ROOT = new URL(".", import.meta.url).pathname;
const DENO_ARGS = [
  "run",
  // The test runner has set node_modules up already; concurrent spawns must not queue on its
  // lock (Deno prints "Blocking waiting for file lock" on stderr when they do).
  "--node-modules-dir=manual",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "cli.ts",
];

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `cli.ts` with `args` from the repository root. */
async function runCli(args: string[]): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...DENO_ARGS, ...args],
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

/** Exit code 2, one `error: ` line on stderr mentioning every string of `mentions`, no stack. */
function assertInputError(result: CliResult, mentions: string[]): void {
  const shown = JSON.stringify(result);
  assertEquals(result.code, 2, `exit code: ${shown}`);
  assert(!result.stderr.includes("    at "), `a stack trace leaked: ${shown}`);
  const lines = result.stderr.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  assertEquals(lines.length, 1, `expected exactly one line on stderr: ${shown}`);
  assert(lines[0].startsWith("error: "), `stderr must start with "error: ": ${shown}`);
  for (const m of mentions) assert(lines[0].includes(m), `stderr should mention "${m}": ${shown}`);
  assertEquals(result.stdout, "", "nothing on stdout");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The header JSON and the data section of a safetensors file. */
async function readRaw(path: string): Promise<{ header: Record<string, Entry>; data: Uint8Array }> {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.subarray(8 + n) };
}

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Write a safetensors file from a raw header object (no validation) and a data section. */
async function writeRaw(path: string, header: unknown, data: Uint8Array): Promise<void> {
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  await Deno.writeFile(path, out);
}

/** Edit the header of `dir`/model.safetensors in place, keeping the data section. */
async function editHeader(dir: string, edit: (header: Record<string, Entry>) => void) {
  const path = `${dir}/model.safetensors`;
  const { header, data } = await readRaw(path);
  edit(header);
  await writeRaw(path, header, data);
}

/** Tensor names of a header, by data offset. */
function byOffset(header: Record<string, Entry>): string[] {
  return Object.keys(header).filter((k) => k !== "__metadata__").sort((a, b) =>
    header[a].data_offsets[0] - header[b].data_offsets[0]
  );
}

interface ErrorCase {
  name: string;
  /** Damage a freshly written tiny model in `dir`; return the CLI arguments to run. */
  setup: (dir: string, root: string) => Promise<string[]>;
  /** Strings the error line must contain (`DIR` is replaced by the model dir). */
  mentions: string[];
  /** Extra checks after the run. */
  after?: (dir: string, root: string) => Promise<void>;
  model?: Partial<RandomModelOptions>;
}

const IDS = "5,17,101,250,3,99";
const K_PROJ = "model.layers.1.self_attn.k_proj.weight";
const UP_PROJ = "model.layers.2.mlp.up_proj.weight";

function forward(dir: string, root: string, ...extra: string[]): string[] {
  return ["forward", "--model", dir, "--out", `${root}/out-${crypto.randomUUID()}.f32`, ...extra];
}

const ERROR_CASES: ErrorCase[] = [
  {
    name: "truncated safetensors file",
    setup: async (dir, root) => {
      const path = `${dir}/model.safetensors`;
      const bytes = await Deno.readFile(path);
      await Deno.writeFile(path, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", "run past the end of the data section", "truncated"],
  },
  {
    name: "safetensors file shorter than its length prefix",
    setup: async (dir, root) => {
      await Deno.writeFile(`${dir}/model.safetensors`, Uint8Array.of(1, 2, 3, 4, 5));
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", "5 bytes", "too short"],
  },
  {
    name: "header length past the end of the file",
    setup: async (dir, root) => {
      const path = `${dir}/model.safetensors`;
      const bytes = await Deno.readFile(path);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
      await Deno.writeFile(path, bytes);
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", "header length", "runs past the end of the file"],
  },
  {
    name: "tensor offsets out of range",
    setup: async (dir, root) => {
      await editHeader(dir, (header) => {
        const entry = header[K_PROJ];
        const span = entry.data_offsets[1] - entry.data_offsets[0];
        const end = Math.max(...byOffset(header).map((n) => header[n].data_offsets[1]));
        entry.data_offsets = [end + 64, end + 64 + span];
      });
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", K_PROJ, "data_offsets", "run past the end"],
  },
  {
    name: "overlapping tensors",
    setup: async (dir, root) => {
      await editHeader(dir, (header) => {
        const entry = header[K_PROJ];
        const span = entry.data_offsets[1] - entry.data_offsets[0];
        // Move k_proj onto the middle of up_proj (both are far from the end of the data).
        const begin = header[UP_PROJ].data_offsets[0] + 40;
        entry.data_offsets = [begin, begin + span];
      });
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", K_PROJ, UP_PROJ, "overlap"],
  },
  {
    name: "unknown dtype",
    setup: async (dir, root) => {
      await editHeader(dir, (header) => {
        header[UP_PROJ].dtype = "F12";
      });
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", UP_PROJ, "unknown dtype", "F12"],
  },
  {
    name: "a tensor the architecture needs is missing",
    setup: async (dir, root) => {
      await editCheckpoint(dir, (tensors) => {
        delete tensors[UP_PROJ];
      });
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", UP_PROJ, "missing", "llama"],
  },
  {
    name: "a tensor shape contradicts config.json",
    setup: async (dir, root) => {
      await editCheckpoint(dir, (tensors) => {
        const [rows, cols] = tensors[K_PROJ].shape;
        tensors[K_PROJ].shape = [cols, rows];
      });
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", K_PROJ, "[40,8]", "config.json implies [8,40]"],
  },
  {
    name: "config.json contradicts the checkpoint",
    setup: async (dir, root) => {
      const path = `${dir}/config.json`;
      const config = JSON.parse(await Deno.readTextFile(path));
      config.intermediate_size = 48;
      await Deno.writeTextFile(path, JSON.stringify(config));
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/model.safetensors", "mlp", "config.json implies", "48"],
  },
  {
    name: "config.json is not JSON",
    setup: async (dir, root) => {
      await Deno.writeTextFile(`${dir}/config.json`, '{"model_type": "llama",');
      return forward(dir, root, "--ids", IDS);
    },
    mentions: ["DIR/config.json", "not valid JSON"],
  },
  {
    name: "missing tokenizer.json with --text",
    setup: async (dir, root) => {
      await Deno.remove(`${dir}/tokenizer.json`);
      return ["forward", "--model", dir, "--text", "the cat", "--out", `${root}/tokenizer.f32`];
    },
    mentions: ["DIR", "tokenizer.json", "missing"],
    after: async (_dir, root) => {
      assert(!(await exists(`${root}/tokenizer.f32`)), "a failed forward leaves no output file");
    },
  },
  {
    name: "missing tokenizer.json for generate",
    setup: async (dir) => {
      await Deno.remove(`${dir}/tokenizer.json`);
      return ["generate", "--model", dir, "--prompt", "hello"];
    },
    mentions: ["DIR", "tokenizer.json", "missing"],
  },
  {
    name: "token id beyond the vocabulary",
    setup: (dir, root) => Promise.resolve(forward(dir, root, "--ids", "1,2,301")),
    mentions: ["DIR/config.json", "token id 301", "vocabulary"],
  },
  {
    name: "malformed --ids",
    setup: (dir, root) => Promise.resolve(forward(dir, root, "--ids", "1,x,3")),
    mentions: ["--ids", '"x"'],
  },
  {
    name: "context beyond max_position_embeddings",
    model: { overrides: { max_position_embeddings: 16 } },
    setup: (dir, root) =>
      Promise.resolve([
        "forward",
        "--model",
        dir,
        "--ids",
        Array.from({ length: 17 }, (_, i) => i + 1).join(","),
        "--chunk-size",
        "5",
        "--out",
        `${root}/long.f32`,
      ]),
    mentions: ["DIR/config.json", "max_position_embeddings 16", "17"],
    after: async (_dir, root) => {
      assert(!(await exists(`${root}/long.f32`)), "partial logits are not left behind");
    },
  },
  {
    name: "--out in a directory that does not exist",
    setup: (dir, root) =>
      Promise.resolve([
        "forward",
        "--model",
        dir,
        "--ids",
        IDS,
        "--out",
        `${root}/no/such/dir/out.f32`,
      ]),
    mentions: ["--out", "no/such/dir/out.f32", "does not exist"],
  },
  {
    name: "--out is a directory",
    setup: (dir, root) => Promise.resolve(["forward", "--model", dir, "--ids", IDS, "--out", root]),
    mentions: ["--out", "ROOT", "directory"],
  },
  {
    name: "a sampling setting out of range",
    setup: (dir) =>
      Promise.resolve([
        "generate",
        "--model",
        dir,
        "--prompt",
        "hi",
        "--temperature",
        "0.7",
        "--top-p",
        "1.5",
      ]),
    mentions: ["--top-p", "(0, 1]", "1.5"],
  },
  {
    name: "unknown subcommand",
    setup: () => Promise.resolve(["frobnicate", "--model", "x"]),
    mentions: ["unknown command", "frobnicate"],
  },
  {
    name: "a bad option value",
    setup: (dir, root) => Promise.resolve(forward(dir, root, "--ids", IDS, "--chunk-size", "0")),
    mentions: ["--chunk-size", "positive integer"],
  },
  {
    // Checked before any measuring: the HF side would otherwise fail minutes later.
    name: "bench --hf with a Python that cannot run",
    setup: (_dir, root) => Promise.resolve(["bench", "--quick", "--hf", `${root}/no/python`]),
    mentions: ["--hf", "ROOT/no/python", "cannot run it", "torch and transformers"],
  },
];

Deno.test("CLI: bad input exits 2 with one error line and no stack trace", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "evictbench_cli_test_" });
  try {
    const prepared = await Promise.all(ERROR_CASES.map(async (c, i) => {
      const dir = `${root}/model${i}`;
      await makeRandomModel(dir, { arch: "llama", seed: 70, ...c.model });
      const args = await c.setup(dir, root);
      return { c, dir, args };
    }));
    const results = await Promise.all(prepared.map(({ args }) => runCli(args)));
    for (const [i, { c, dir }] of prepared.entries()) {
      await t.step(c.name, async () => {
        const mentions = c.mentions.map((m) => m.replace("DIR", dir).replace("ROOT", root));
        assertInputError(results[i], mentions);
        await c.after?.(dir, root);
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Largest |a − b| over two equally long arrays. */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assertEquals(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

async function readLogits(path: string): Promise<Float32Array> {
  const bytes = await Deno.readFile(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

Deno.test("CLI: forward, generate and list work end to end", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "evictbench_cli_test_" });
  try {
    const gemma = `${root}/gemma3`;
    // This model's greedy completion of the prompt below includes ids past the tokenizer's
    // vocabulary (301 rows, 289 tokens), which must decode to nothing rather than fail.
    const qwen2 = `${root}/qwen2`;
    await Promise.all([
      makeRandomModel(gemma, { arch: "gemma3", seed: 71 }),
      makeRandomModel(qwen2, { arch: "qwen2", seed: 2 }),
    ]);
    const ids = Int32Array.from({ length: 11 }, (_, i) => (i * 53 + 7) % 301);
    const text = "the cat sat on the mat";
    const prompt = "the cat sat on the mat";
    const [byIds, chunked, byText, generated, chat, listed, help] = await Promise.all([
      runCli(["forward", "--model", gemma, "--ids", ids.join(","), "--out", `${root}/ids.f32`]),
      runCli([
        "forward",
        "--model",
        gemma,
        "--ids",
        ids.join(", "),
        "--chunk-size",
        "4",
        "--threads",
        "2",
        "--out",
        `${root}/chunked.f32`,
      ]),
      runCli(["forward", "--model", gemma, "--text", text, "--out", `${root}/text.f32`]),
      runCli(["generate", "--model", qwen2, "--prompt", prompt, "--max-new-tokens", "5"]),
      runCli(["generate", "--model", qwen2, "--prompt", "hi", "--chat", "--max-new-tokens", "3"]),
      runCli(["list"]),
      runCli(["--help"]),
    ]);
    const model = await Model.load(gemma, { attention: new OrtAttention() });
    const V = model.config.vocabSize;

    await t.step(
      "forward --ids writes T × vocab float32 logits equal to Model.forward",
      async () => {
        assertEquals(byIds.code, 0, JSON.stringify(byIds));
        assertEquals(byIds.stdout, "");
        const stat = await Deno.stat(`${root}/ids.f32`);
        assertEquals(stat.size, ids.length * V * 4);
        const want = await model.forward(ids, model.createCache(), { logits: "all" });
        const got = await readLogits(`${root}/ids.f32`);
        const diff = maxAbsDiff(got, want);
        assert(diff <= 1e-6, `CLI logits differ from Model.forward by ${diff}`);
        const chunkedLogits = await readLogits(`${root}/chunked.f32`);
        assertEquals(chunked.code, 0, JSON.stringify(chunked));
        const chunkedDiff = maxAbsDiff(chunkedLogits, want);
        assert(chunkedDiff <= 1e-5, `--chunk-size 4 logits differ by ${chunkedDiff}`);
      },
    );

    await t.step("forward --text tokenizes with the model's tokenizer", async () => {
      assertEquals(byText.code, 0, JSON.stringify(byText));
      const tokens = Int32Array.from(model.tokenizer().encode(text, { addSpecialTokens: false }));
      assert(tokens.length > 3 && tokens.length < text.length, "BPE merged some bytes");
      const got = await readLogits(`${root}/text.f32`);
      assertEquals(got.length, tokens.length * V);
      const want = await model.forward(tokens, model.createCache(), { logits: "all" });
      const diff = maxAbsDiff(got, want);
      assert(diff <= 1e-6, `CLI logits differ from Model.forward by ${diff}`);
    });

    await t.step("generate prints the greedy completion", async () => {
      assertEquals(generated.code, 0, JSON.stringify(generated));
      const qwen = await Model.load(qwen2, { attention: new OrtAttention() });
      const tokenizer = qwen.tokenizer();
      const promptIds = Int32Array.from(tokenizer.encode(prompt));
      const result = await generate(qwen, qwen.createCache(), promptIds, { maxNewTokens: 5 });
      assert(
        result.tokens.some((id) => tokenizer.token(id) === null),
        `the completion ${result.tokens} should include an id the tokenizer lacks`,
      );
      const known = result.tokens.filter((id) => tokenizer.token(id) !== null);
      const completion = tokenizer.decode(known, { skipSpecialTokens: true });
      assertEquals(generated.stdout, `${completion}\n`);
      const stderr = generated.stderr.trimEnd().split("\n");
      assertEquals(stderr.length, 1, generated.stderr);
      assert(
        stderr[0].startsWith(
          `[${promptIds.length} prompt tokens, ${result.tokens.length} generated, stop: ${result.stopReason},`,
        ),
        generated.stderr,
      );
      assertEquals(chat.code, 0, JSON.stringify(chat));
      assert(/ generated, stop: /.test(chat.stderr), chat.stderr);
    });

    await t.step("list prints the four architectures", () => {
      assertEquals(listed.code, 0, JSON.stringify(listed));
      for (const arch of ARCHITECTURES) {
        assert(new RegExp(`^  ${arch} +model_type `, "m").test(listed.stdout), listed.stdout);
      }
      assertEquals(ARCHITECTURES.length, 4);
      assertEquals(help.code, 0, JSON.stringify(help));
      for (const command of ["forward", "generate", "list"]) {
        assert(help.stdout.includes(command), help.stdout);
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("CLI: list options take space- or comma-separated values", () => {
  assertEquals(commaList("full, kvzip,,h2o"), ["full", "kvzip", "h2o"]);
  assertEquals(collectList("snapkv", collectList("full,kvzip")), ["full", "kvzip", "snapkv"]);
});

Deno.test("CLI: sweep --budget-unit is ratio or tokens, and --budgets takes token counts beside it", () => {
  const sweep = (): Command => {
    const command = buildProgram().commands.find((c) => c.name() === "sweep")!;
    return command.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  };
  const tokens = sweep();
  tokens.parseOptions(["--budget-unit", "tokens", "--budgets", "128,2048", "512"]);
  assertEquals(tokens.opts().budgetUnit, "tokens");
  assertEquals(tokens.opts().budgets, [128, 2048, 512]);
  assertEquals(sweep().opts().budgetUnit, undefined, "no default: the config's unit stands");
  const error = assertThrows(
    () => sweep().parseOptions(["--budget-unit", "percent"]),
    CommanderError,
  );
  assert(
    error.message.includes("--budget-unit") && error.message.includes("tokens"),
    error.message,
  );
});
