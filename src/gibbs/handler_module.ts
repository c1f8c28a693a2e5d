/**
 * A handler given as a module (a path or URL) and the name of one of its exports: what the CLI
 * serves, what `spawnWorkers` hands to its children, and what every worker thread imports.
 *
 * @module
 */

import { GibbsError } from "./errors.ts";
import type { Handler } from "./handler.ts";

/** Why a module cannot serve as a handler. */
export type HandlerModuleReason = "not-found" | "load-failed" | "no-export" | "not-callable";

/** A module that cannot serve as a handler: not found, failed to load, or without the export. */
export class HandlerModuleError extends GibbsError {
  /** Why. */
  readonly reason: HandlerModuleReason;

  /** Creates the error. */
  constructor(message: string, reason: HandlerModuleReason, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandlerModuleError";
    this.reason = reason;
  }
}

/**
 * Turns a path (relative to `cwd`) or a URL into the module's URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { moduleUrl } from "./handler_module.ts";
 * assert.equal(moduleUrl("./model.ts", "/srv/app").href, "file:///srv/app/model.ts");
 * assert.equal(moduleUrl("file:///m.ts", "/x").href, "file:///m.ts");
 * ```
 */
export function moduleUrl(specifier: string | URL, cwd: string): URL {
  if (specifier instanceof URL) return specifier;
  // A URL has a scheme of two letters or more; `C:\` is a Windows path.
  if (/^[a-z][a-z0-9+.-]+:/i.test(specifier)) return new URL(specifier);
  return new URL(specifier, `file://${cwd.endsWith("/") ? cwd : `${cwd}/`}`);
}

/**
 * Imports a module and returns its export `name` (default: the default export).
 *
 * @throws {HandlerModuleError} when the module cannot be loaded or has no such export
 */
export async function importHandler(url: URL, name = "default"): Promise<Handler> {
  let module: Record<string, unknown>;
  try {
    module = await import(url.href);
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    // A path that leads nowhere is a usage mistake; a module that fails as it loads is a bug.
    const notFound = (error as { code?: string }).code === "ERR_MODULE_NOT_FOUND";
    throw new HandlerModuleError(
      `cannot import ${url.href}: ${firstLine(text)}`,
      notFound ? "not-found" : "load-failed",
      { cause: error },
    );
  }
  const handler = module[name];
  if (handler === undefined) {
    const names = Object.keys(module).join(", ") || "none";
    throw new HandlerModuleError(
      `${url.href} has no export "${name}" (its exports: ${names})`,
      "no-export",
    );
  }
  const callable = typeof handler === "function" ||
    (typeof handler === "object" && handler !== null &&
      typeof (handler as { call?: unknown }).call === "function");
  if (!callable) {
    throw new HandlerModuleError(
      `${url.href}'s export "${name}" is a ${typeof handler}, not a function or a class`,
      "not-callable",
    );
  }
  return handler as Handler;
}

function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? text;
  return line.trim();
}
