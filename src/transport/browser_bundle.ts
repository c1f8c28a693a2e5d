/**
 * The browser build of the library (`src/browser.ts`, bundled into one ES module): built here
 * with esbuild from npm, on first use, from the sources next to this file. The npm build puts
 * `browser_bundle.node.ts` in place of this file, which reads the bundle the package ships.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ENTRY = new URL("../browser.ts", import.meta.url);
const CONFIG = new URL("../../deno.json", import.meta.url);
/**
 * Left out of the bundle: libsodium (a megabyte of WebAssembly) is only a faster engine for
 * CURVE's boxes, loaded when it can be; in a page its import fails and `@noble/ciphers` serves.
 */
const EXTERNAL = ["libsodium-wrappers"];
let built: Promise<Uint8Array> | undefined;

/** The npm packages Deno resolved for the sources, by name, with their folder in its cache. */
function npmPackages(): Map<string, string> {
  const output = execFileSync(
    process.execPath,
    ["info", "--json", "--config", fileURLToPath(CONFIG), fileURLToPath(ENTRY)],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  const info = JSON.parse(output) as {
    npmPackages?: Record<string, { name: string; localPath?: string }>;
  };
  const found = new Map<string, string>();
  for (const pkg of Object.values(info.npmPackages ?? {})) {
    if (pkg.localPath && existsSync(pkg.localPath) && !found.has(pkg.name)) {
      found.set(pkg.name, pkg.localPath);
    }
  }
  return found;
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
  // esbuild finds packages in node_modules folders, which Deno has none of: a temporary one
  // holds a link to each package's folder in Deno's cache. Links are kept as paths, so that a
  // package's own dependencies are found there too.
  const modules = join(mkdtempSync(join(tmpdir(), "gibbs_browser_")), "node_modules");
  for (const [name, path] of npmPackages()) {
    const at = join(modules, name);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(path, at);
  }
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
      nodePaths: [modules],
      preserveSymlinks: true,
      external: EXTERNAL,
      plugins: [{
        name: "gibbs-browser",
        setup(build) {
          build.onResolve({ filter: /\.ts$/ }, (args) => {
            if (!args.path.startsWith(".")) return undefined;
            const path = join(args.resolveDir, args.path);
            const variant = path.replace(/\.ts$/, ".browser.ts");
            return { path: existsSync(variant) ? variant : path };
          });
        },
      }],
    });
    return result.outputFiles[0].contents;
  } finally {
    await esbuild.stop();
    rmSync(dirname(modules), { recursive: true, force: true });
  }
}

/** The browser bundle, built once per process (see {@linkcode buildBrowserBundle}). */
export function browserBundle(): Promise<Uint8Array> {
  built ??= buildBrowserBundle();
  built.catch(() => (built = undefined));
  return built;
}
