/**
 * `evictbench sweep`. Until the methods, tasks and sweep runner land, it runs a generation demo
 * on a small random Qwen3-architecture model that it makes under .cache/.
 *
 * @module
 */

export async function runSweepCommand(): Promise<void> {
  console.log("evictbench sweep: not yet available");
}
