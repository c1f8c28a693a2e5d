/**
 * The browser build of the library (`src/browser.ts`, bundled into one ES module): built here
 * with esbuild from npm, on first use, from the sources next to this file. The npm build puts
 * `browser_bundle.node.ts` in place of this file, which reads the bundle the package ships.
 *
 * @module
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ENTRY = new URL("../browser.ts", import.meta.url);
let built: Promise<Uint8Array> | undefined;

/** The package folder holding `file` (the nearest one above it with a package.json). */
function packageRoot(file: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
  }
  throw new Error(`No package.json above ${file}`);
}

/**
 * Builds the bundle: every `X.ts` for which an `X.browser.ts` exists is swapped for it (the
 * runtime adapter), and npm packages are taken from Deno's cache with their browser entry
 * points. Minified, ES2022.
 *
 * @example
 * ```ts ignore
 * const js = await buildBrowserBundle();
 * Deno.writeFileSync("gibbs.js", js);
 * ```
 */
export async function buildBrowserBundle(): Promise<Uint8Array> {
  if (ENTRY.protocol !== "file:") {
    throw new Error(
      `The browser bundle is built from local sources; ${ENTRY.href} is not one (use the npm ` +
        "package's gibbs-zmq/browser, which ships it)",
    );
  }
  const esbuild = await import("esbuild");
  // esbuild resolves bare package names through node_modules folders, which Deno has none
  // of: each package gets a link in a temporary one, to its folder in Deno's cache.
  const modules = mkdtempSync(join(tmpdir(), "gibbs_browser_"));
  const linked = new Set<string>();
  const link = (name: string) => {
    if (linked.has(name)) return;
    linked.add(name);
    const target = packageRoot(fileURLToPath(import.meta.resolve(name)));
    const at = join(modules, "node_modules", name);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(target, at);
  };
  const resolving = Symbol("resolving");
  try {
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(ENTRY)],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      legalComments: "none",
      logLevel: "silent",
      plugins: [{
        name: "gibbs-browser",
        setup(build) {
          build.onResolve({ filter: /\.ts$/ }, (args) => {
            if (!args.path.startsWith(".")) return undefined;
            const path = join(args.resolveDir, args.path);
            const variant = path.replace(/\.ts$/, ".browser.ts");
            return { path: existsSync(variant) ? variant : path };
          });
          build.onResolve({ filter: /^[^./]/ }, async (args) => {
            if (args.pluginData === resolving || args.path.startsWith("node:")) return undefined;
            const name = args.path.startsWith("@")
              ? args.path.split("/").slice(0, 2).join("/")
              : args.path.split("/")[0];
            link(name);
            const found = await build.resolve(args.path, {
              kind: args.kind,
              resolveDir: modules,
              pluginData: resolving,
            });
            return found.errors.length > 0 ? { errors: found.errors } : { path: found.path };
          });
        },
      }],
    });
    return result.outputFiles[0].contents;
  } finally {
    await esbuild.stop();
    rmSync(modules, { recursive: true, force: true });
  }
}

/** The browser bundle, built once per process (see {@linkcode buildBrowserBundle}). */
export function browserBundle(): Promise<Uint8Array> {
  built ??= buildBrowserBundle();
  built.catch(() => (built = undefined));
  return built;
}
