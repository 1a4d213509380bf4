/**
 * `evictbench list`: the registered architectures, methods and tasks.
 *
 * @module
 */

import { ARCHITECTURES } from "../engine/types.ts";
import { SUPPORTED_MODEL_TYPES } from "../engine/config.ts";
import { listMethods } from "../methods/mod.ts";
import { listTasks, SUITES } from "../tasks/mod.ts";

/** Print the registered architectures, methods and tasks. */
export function runListCommand(): void {
  console.log("architectures:");
  for (const arch of ARCHITECTURES) {
    const types = Object.entries(SUPPORTED_MODEL_TYPES)
      .filter(([, a]) => a === arch)
      .map(([t]) => t);
    console.log(`  ${arch.padEnd(20)} model_type ${types.join(", ")}`);
  }
  console.log("methods:");
  for (const m of listMethods()) {
    const phases = m.phases.length === 0 ? "never evicts" : m.phases.join(", ");
    console.log(`  ${m.id.padEnd(20)} ${m.title} — ${phases}`);
  }
  console.log("tasks:");
  for (const suite of SUITES) {
    const names = listTasks({ suite }).map((t) => t.name);
    console.log(`  ${suite.padEnd(20)} ${names.join(", ")}`);
  }
}
