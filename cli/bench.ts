export async function runBenchCommand(): Promise<void> {
  console.log("bench: not yet available");
}
