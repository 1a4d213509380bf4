/**
 * The evictbench command line: one entry, one subcommand per job, each aliased as a
 * `deno task`. Bad input exits with code 2 and one line on stderr; a bug prints its stack.
 *
 * @module
 */

// First: errors met while the other modules load (a method plugin that registers badly).
import "./cli/import_errors.ts";
import { Command, CommanderError, Option } from "commander";
import { isInputError } from "./errors.ts";
import { runForwardCommand } from "./cli/forward.ts";
import { runGenerateCommand } from "./cli/generate.ts";
import { runListCommand } from "./cli/list.ts";
import { runBenchCommand } from "./cli/bench.ts";
import { runMergeCommand, runSweepCommand } from "./cli/sweep.ts";
import { runReportCommand } from "./cli/report.ts";
import { runTrainGateCommand } from "./cli/train_gate.ts";
import { runConvertGateCommand } from "./cli/convert_gate.ts";
import { runInspectCommand } from "./cli/inspect.ts";
import { corpusCommand } from "./cli/corpus.ts";
import {
  finiteNumber,
  integerList,
  nonNegativeInt,
  numberList,
  positiveInt,
} from "./cli/options.ts";
import { BUDGET_UNITS, PROTOCOLS } from "./sweep/config.ts";

/** Collect a repeatable option's values. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The compute backend option of the commands that run a model. */
function backendOption(): Option {
  return new Option(
    "--backend <name>",
    "compute backend (auto: WebGPU when a non-fallback adapter exists, else CPU)",
  ).choices(["auto", "cpu", "webgpu"]).default("auto");
}

/** "a,b" → ["a", "b"]; empty items dropped. */
export function commaList(value: string): string[] {
  return value.split(",").map((v) => v.trim()).filter((v) => v !== "");
}

/** A variadic option's accumulator that also splits each value at commas. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...commaList(value)];
}

/** Build the program; exported so tests can drive it without a subprocess. */
export function buildProgram(): Command {
  const program = new Command("evictbench")
    .description("A benchmark harness for KV-cache eviction in LLM inference.")
    .showSuggestionAfterError(true)
    .exitOverride();

  program.command("forward")
    .description("Write the logits of every position as little-endian float32 [T, vocab].")
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .option("--ids <ids>", "comma-separated token ids")
    .option("--text <string>", "text to tokenize (no special tokens added)")
    .requiredOption("--out <file>", "output file")
    .option("--chunk-size <n>", "prefill chunk size in tokens", positiveInt("--chunk-size"))
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .addOption(backendOption())
    .action(runForwardCommand);

  program.command("generate")
    .description(
      "Generation from a prompt, greedy unless --temperature is given; prints the completion.",
    )
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption("--prompt <text>", "prompt text")
    .option(
      "--max-new-tokens <n>",
      "tokens to generate at most",
      positiveInt("--max-new-tokens"),
      64,
    )
    .option("--chat", "wrap the prompt in the model's chat template", false)
    .option("--stop <strings...>", "stop strings")
    .option(
      "--temperature <t>",
      "sample at this temperature (> 0) instead of greedy",
      finiteNumber("--temperature"),
    )
    .option("--top-p <p>", "with --temperature: nucleus mass in (0, 1]", finiteNumber("--top-p"), 1)
    .option(
      "--top-k <k>",
      "with --temperature: most likely tokens kept (0: all)",
      nonNegativeInt("--top-k"),
      0,
    )
    .option("--seed <n>", "with --temperature: seed of the draws", nonNegativeInt("--seed"), 0)
    .option("--chunk-size <n>", "prefill chunk size in tokens", positiveInt("--chunk-size"))
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .addOption(backendOption())
    .action(runGenerateCommand);

  program.command("list")
    .description("List the registered architectures, methods and tasks.")
    .action(runListCommand);

  program.command("bench")
    .description("Measure speed against ceilings taken in the same run (see README).")
    .option("--quick", "small shapes, for a smoke run", false)
    .option("--out <file>", "also write the results as JSON")
    .option(
      "--hf <python>",
      "also run HF transformers (tools/bench_hf.py with this Python) on the same weights, side by side",
    )
    .option("--keep-model <dir>", "write the random benchmark model here and keep it")
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .option(
      "--methods [ids]",
      "also time the eviction methods at 8k context (long; CPU engine); optionally only these",
      (v: string) => commaList(v),
    )
    .addOption(
      new Option("--backend <name>", "cpu: the CPU engine; webgpu: the GPU section (bench/gpu.ts)")
        .choices(["cpu", "webgpu"]).default("cpu"),
    )
    .action(runBenchCommand);

  program.command("sweep")
    .description(
      "Run or resume a sweep (models × methods × budgets × tasks); prints the report's path last.",
    )
    .argument("[config]", "sweep config (JSON, comments allowed); default: the default sweep")
    .option("--out <dir>", "run directory")
    .addOption(
      new Option("--backend <name>", "compute backend (default: the config's, else cpu)")
        .choices(["auto", "cpu", "webgpu"]),
    )
    .addOption(new Option("--protocol <name>", "evaluation protocol").choices([...PROTOCOLS]))
    .option("--seed <n>", "seed of methods' randomness", nonNegativeInt("--seed"))
    .option("--models <dirs...>", "model directories", collectList)
    .option("--methods <ids...>", "method ids (space- or comma-separated)", collectList)
    .option(
      "--budgets <r...>",
      "kept ratios, or context tokens per KV head with --budget-unit tokens (space- or comma-separated)",
      numberList("--budgets"),
    )
    .addOption(
      new Option(
        "--budget-unit <unit>",
        "what --budgets count: ratio (kept ratios) or tokens (context tokens kept per KV head); not for the decode protocol",
      ).choices([...BUDGET_UNITS]),
    )
    .option("--tasks <names...>", "tasks or suites (space- or comma-separated)", collectList)
    .option("--n <n>", "samples per length and seed, for every task", positiveInt("--n"))
    .option(
      "--lengths <tokens...>",
      "target prompt lengths, for every task generated at one (space- or comma-separated)",
      integerList("--lengths", 32),
    )
    .option(
      "--decode-budgets <n...>",
      "decode protocol: entries kept per (layer, KV head) (space- or comma-separated)",
      integerList("--decode-budgets", 1),
    )
    .option("--shard <i/n>", "run one deterministic slice of the plan (0-based)")
    .option("--no-report", "skip report.html (e.g. on shards; merge renders it)")
    .option("--schema", "print the config's JSON Schema and exit")
    .action(runSweepCommand);

  program.command("merge")
    .description("Join the run directories of a sharded sweep into one run.")
    .argument("<out>", "merged run directory")
    .argument("<runs...>", "shard run directories")
    .action(runMergeCommand);

  program.command("report")
    .description("Render a run directory as an offline HTML report (plus cells.csv and SVGs).")
    .argument("[run]", "run directory")
    .option("--budget <r>", "budget shown in the task × method heatmap", finiteNumber("--budget"))
    .option("--screenshot <png>", "also save a full-page screenshot (headless Chromium)")
    .action(runReportCommand);

  program.command("train-gate")
    .description(
      "Train Fast KVzip gates for a model from KVzip targets (see methods/gates/). The file " +
        "records the model's checkpoint fingerprint; gated refuses it for other weights.",
    )
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption("--corpus <files...>", "plain-text files to distil on")
    .requiredOption("--out <file>", "gates.safetensors to write (with the model's fingerprint)")
    .option("--steps <n>", "optimisation steps", positiveInt("--steps"), 5000)
    .option("--resume", "continue from the checkpoint", false)
    .option("--features <dir>", "features directory (default <out>.features)")
    .option("--checkpoint <file>", "checkpoint file (default <out>.ckpt)")
    .option("--batch-size <n>", "tokens per step", positiveInt("--batch-size"), 1000)
    .option("--lr <x>", "base learning rate (default 0.2)")
    .option("--seed <n>", "seed (default 0)")
    .option("--gate-dim <n>", "gate head dimension", positiveInt("--gate-dim"), 16)
    .option("--sinks <n>", "learned sink keys per KV head", positiveInt("--sinks"), 16)
    .option("--chunk <n>", "reconstruction chunk in tokens", positiveInt("--chunk"), 2000)
    .option("--sample-tokens <n>", "tokens per sample (8000)", positiveInt("--sample-tokens"))
    .option("--feature-dtype <dtype>", "hidden states on disk: bf16 or f32 (default bf16)")
    .option("--log-every <n>", "a progress line every n steps", positiveInt("--log-every"), 10)
    .option("--checkpoint-every <n>", "checkpoint period", positiveInt("--checkpoint-every"), 500)
    .option("--validation-stride <n>", "every n-th token (100)", positiveInt("--validation-stride"))
    .option("--threads <n>", "onnxruntime threads", positiveInt("--threads"))
    .option("--heldout <files...>", "held-out text: report gate accuracy and Spearman with KVzip")
    .addOption(
      new Option("--backend <name>", "backend of the frozen model's forward passes (features)")
        .choices(["auto", "cpu", "webgpu"]).default("cpu"),
    )
    .action(runTrainGateCommand);

  program.command("convert-gate")
    .description("Convert an official Fast KVzip gate checkpoint (.pt) to gates.safetensors.")
    .requiredOption("--in <file>", "q{G}_dim16_sink16.pt")
    .requiredOption("--out <file>", "gates.safetensors to write")
    .option("--model <dir>", "check against this model and take its gated layers")
    .action(runConvertGateCommand);

  program.command("inspect")
    .description(
      "One prefill with one-shot eviction; write every head's scores and kept positions.",
    )
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption("--method <id>", "registered method id")
    .option("--param <key=value>", "method parameter (repeatable)", collect, [])
    .requiredOption("--kept <r>", "kept ratio of the context, in (0, 1]")
    .option("--policy <p>", "selection policy: per-head, per-layer or global")
    .option("--safeguard <alpha>", "AdaKV safeguard fraction (0 = none)")
    .option(
      "--window <n>",
      "recent context tokens kept outside the budget (default 0; at most r·n of the context, spec §3.2)",
    )
    .option("--sinks <n>", "positions below n are always kept (default 0)")
    .option("--prefix <n>", "the first n tokens are a protected prefix (default 0)")
    .option("--ids <ids>", "comma-separated token ids")
    .option("--text <string>", "text to tokenize (no special tokens added)")
    .requiredOption("--out <file>", "JSON output file")
    .option("--chunk-size <n>", "prefill chunk size in tokens")
    .option("--threads <n>", "onnxruntime threads")
    .addOption(backendOption().default("cpu"))
    .action(runInspectCommand);

  // addCommand does not pass settings down as .command() does: copy them (exitOverride, output).
  program.addCommand(corpusCommand().copyInheritedSettings(program));

  return program;
}

/** Run the CLI with `args` and return the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has printed its message already.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (isInputError(error)) {
      console.error(`error: ${error.message}`);
      return error.exitCode;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
