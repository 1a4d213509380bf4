/**
 * A method plugin that `registerMethod` refuses fails while its module is imported, before any
 * command runs: with {@linkcode reportUncaughtInputErrors} installed first, that is one line and
 * exit 2, while a plugin's own bug still shows Deno's stack.
 */

import { assert, assertEquals } from "../tests/assert.ts";

const ROOT = new URL("..", import.meta.url);

/** Run an entry that installs the reporter, then imports `plugin` (module source). */
async function runWithPlugin(plugin: string): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench-import-errors-" });
  try {
    await Deno.writeTextFile(
      `${dir}/install.ts`,
      `import { reportUncaughtInputErrors } from "${new URL("cli/import_errors.ts", ROOT)}";\n` +
        "reportUncaughtInputErrors();\n",
    );
    await Deno.writeTextFile(`${dir}/plugin.ts`, plugin);
    await Deno.writeTextFile(
      `${dir}/entry.ts`,
      'import "./install.ts";\nimport "./plugin.ts";\nconsole.log("unreached");\n',
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--node-modules-dir=manual",
        "--config",
        new URL("deno.json", ROOT).pathname,
        "--allow-read",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        `${dir}/entry.ts`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const REGISTRY = new URL("methods/mod.ts", ROOT).href;

Deno.test("a plugin registering a taken id: one error line naming it, exit 2", async () => {
  const { code, stderr } = await runWithPlugin(
    `import { getMethod, registerMethod } from "${REGISTRY}";\n` +
      'registerMethod({ ...getMethod("knorm"), title: "My norm" });\n',
  );
  assertEquals(code, 2, stderr);
  assertEquals(
    stderr.trim(),
    "error: registerMethod(knorm): the id is already registered (by Key norm); pick another",
  );
});

Deno.test("a plugin's own bug at import keeps Deno's report with its stack", async () => {
  const { code, stderr } = await runWithPlugin(
    `import "${REGISTRY}";\nfunction broken(): never { throw new TypeError("plugin bug"); }\nbroken();\n`,
  );
  assertEquals(code, 1, stderr);
  assert(stderr.includes("plugin bug") && stderr.includes("    at "), stderr);
});
