/**
 * Process hygiene for the benchmark scripts, under Deno or Node alike: child processes die with
 * their benchmark (however it ends: normally, on an error, a signal or its watchdog), and a
 * child whose parent is gone exits by itself.
 *
 * @module
 */

import process from "node:process";

/** Something to kill when the benchmark ends. */
export interface Killable {
  kill(signal?: NodeJS.Signals | number): unknown;
}

const owned = new Set<Killable>();
const cleanups: (() => void)[] = [];
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", () => {
    for (const fn of cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // exiting anyway
      }
    }
    for (const child of owned) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => process.exit(130));
  }
}

/** Kills `child` (SIGKILL) when this process exits; returns it. */
export function own<T extends Killable>(child: T): T {
  install();
  owned.add(child);
  return child;
}

/** Stops owning `child` (it ended by itself). */
export function disown(child: Killable): void {
  owned.delete(child);
}

/** Runs `fn` (synchronous) when this process exits, before owned children are killed. */
export function atExit(fn: () => void): void {
  install();
  cleanups.push(fn);
}

/**
 * Exits with status 3 after `ms`, saying `what` hung; owned children are killed on the way out.
 * Returns a function that disarms it.
 */
export function watchdog(ms: number, what: string): () => void {
  install();
  const timer = setTimeout(() => {
    console.error(`${what}: watchdog fired after ${ms} ms`);
    process.exit(3);
  }, ms);
  return () => clearTimeout(timer);
}

/** For a child role: exits when the process that started it is gone (it was re-parented). */
export function exitWithParent(): void {
  const parent = process.ppid;
  const timer: unknown = setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500);
  // The watch alone must not keep the process alive (Deno's timers are numbers, Node's objects).
  const deno = (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno;
  if (typeof timer === "number") deno?.unrefTimer(timer);
  else (timer as { unref(): void }).unref();
}
