/**
 * Command-line arguments of a benchmark script, under Deno or Node alike.
 *
 * @module
 */

/** The script's arguments. */
export function scriptArgs(): string[] {
  const deno = (globalThis as { Deno?: { args: string[] } }).Deno;
  return deno ? deno.args : process.argv.slice(2);
}

/** The URL of a sibling module, `.ts` from source and `.js` once built for Node. */
export function sibling(path: string, base: string): string {
  const url = new URL(path, base).href;
  return base.endsWith(".ts") ? url : url.replace(/\.ts$/, ".js");
}

/** Arguments that make `process.execPath` run `script` with `args`, under Deno or Node. */
export function sameRuntime(script: string, args: string[]): string[] {
  const deno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  return deno ? ["run", "-A", script, ...args] : [script, ...args];
}
