/**
 * Builds the npm package in `npm/` from the Deno sources: `deno run -A scripts/build_npm.ts`.
 *
 * Steps:
 * 1. Stage `mod.ts`, `src/`, `tests/` and `bench/` in a temporary folder, putting every
 *    `X.node.ts` in place of its `X.ts` (the runtime adapter), and rewriting `npm:` specifiers
 *    and import-map names to bare package names.
 * 2. Compile the files reachable from {@linkcode LIBRARY_ROOTS}, the `*.test.ts` files, the
 *    test fixtures and the benchmark scripts (all of `bench/` but its Deno-only driver) with the
 *    TypeScript compiler API (ESM for Node 20, `.d.ts` beside the library's JS), dropping the
 *    `if (import.meta.main)` blocks, since on Node the `gibbs` bin is the CLI entry. The library
 *    must type-check against Node's type definitions; the tests and benchmarks only get a note
 *    (`deno check` types them).
 * 3. Write `package.json` (dependencies: the packages the staged library imports; test-only ones
 *    go to devDependencies), the bin, README.md and LICENSE, and copy the tests' helper files.
 * 4. Bundle the browser build (`src/browser.ts`, with esbuild: `src/transport/browser_bundle.ts`)
 *    into `browser/gibbs.js`, exported as `gibbs-zmq/browser` and served by the gateway.
 * 5. Copy the runtime dependencies into `node_modules` (see {@linkcode vendorDependencies}), so
 *    that `npm install ./npm`, which links the folder, works in a fresh project.
 *
 * Afterwards `cd npm && npm pack` makes the tarball (tests and benchmarks are left out of it),
 * `cd npm && npm install && node --test tests/` runs the suite on Node, and
 * `node npm/bench/socket_bench.js throughput --size 64` (etc.) a benchmark on Node.
 *
 * Options: `--out DIR` (default `npm`), `--name NAME` (default {@linkcode DEFAULT_NAME}).
 *
 * @module
 */

// A build tool, not a dependency of the library: kept out of deno.json's import map.
// deno-lint-ignore no-import-prefix
import ts from "npm:typescript@^5.7";
import { buildBrowserBundle } from "../src/transport/browser_bundle.ts";

/**
 * The npm package name. Not deno.json's `@gibbs/gibbs`: publishing under the `@gibbs` scope
 * needs that npm organisation, which is not ours. `gibbs-zmq` is free and says what it is.
 */
const DEFAULT_NAME = "gibbs-zmq";
/** The oldest Node that loads an ES module through `require()` without a flag. */
const NODE_ENGINES = ">=20.19";
/** Node type definitions the compiler checks against, matching `NODE_ENGINES`. */
const NODE_TYPES = "npm:@types/node@^20.19";
/** Type definitions of packages that ship none (`ws`, the tests' hostile WebSocket client). */
const DEPENDENCY_TYPES = ["npm:@types/ws@^8.18.1"];
/**
 * Library modules the build starts from; whatever they import comes along. `src/cli/entry.ts`
 * and `src/gibbs/thread_entry.ts` are reached by URL only (spawnWorkers starts the first in
 * child processes, a worker the second on its handler threads), so they are named here.
 */
const LIBRARY_ROOTS = [
  "mod.ts",
  "src/cli/main.ts",
  "src/cli/entry.ts",
  "src/gibbs/thread_entry.ts",
];
/** Benchmark files not built for Node: the driver runs the others under Deno and Node. */
const BENCH_SKIPPED = new Set(["bench/main.ts", "bench/libzmq_anchor.ts"]);
/** Folders never staged or copied. */
const SKIPPED_DIRS = new Set(["node_modules", ".git"]);

const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const args = parseArgs(Deno.args);
const outDir = resolvePath(args.out ?? "npm");

interface DenoConfig {
  name?: string;
  version?: string;
  description?: string;
  license?: string;
  imports?: Record<string, string>;
}

/** A package a staged file imports, with the version range its specifier asked for. */
interface Dependency {
  name: string;
  range: string;
}

/** A staged TypeScript file. */
interface StagedFile {
  /** Path relative to the root, with `/` separators. */
  path: string;
  /** Packages it imports. */
  dependencies: Dependency[];
  /** Why its specifiers could not be rewritten: fatal only if the build reaches the file. */
  error?: Error;
}

function parseArgs(argv: string[]): { out?: string; name?: string } {
  const result: { out?: string; name?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out" || arg === "--name") result[arg.slice(2) as "out" | "name"] = argv[++i];
    else throw new Error(`Unknown argument ${arg} (options: --out DIR, --name NAME)`);
  }
  return result;
}

function resolvePath(path: string): string {
  return path.startsWith("/") ? path : `${root}/${path}`;
}

/** Lists files under `dir` (relative to the root) recursively, skipping `SKIPPED_DIRS`. */
function walk(dir: string): string[] {
  const files: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`${root}/${dir}`)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return files;
    throw error;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      if (!SKIPPED_DIRS.has(entry.name)) files.push(...walk(path));
    } else if (entry.isFile) {
      files.push(path);
    }
  }
  return files;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash);
}

function write(path: string, text: string): void {
  Deno.mkdirSync(dirname(path), { recursive: true });
  Deno.writeTextFileSync(path, text);
}

function copy(from: string, to: string): void {
  Deno.mkdirSync(dirname(to), { recursive: true });
  Deno.copyFileSync(from, to);
}

/** Splits `npm:name@range/sub/path` into its parts; the range defaults to `*`. */
function parseNpmSpecifier(specifier: string): { name: string; range: string; subpath: string } {
  const rest = specifier.slice("npm:".length).replace(/^\//, "");
  const match = /^((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?(\/.*)?$/.exec(rest);
  if (!match) throw new Error(`Cannot parse the npm specifier ${specifier}`);
  return { name: match[1], range: match[2] ?? "*", subpath: match[3] ?? "" };
}

/**
 * Rewrites a module specifier of a staged file for Node, recording the package it names.
 * Relative and `node:` specifiers stay; `npm:` ones and import-map names become bare names.
 */
function rewriteSpecifier(
  specifier: string,
  file: string,
  imports: Record<string, string>,
  dependencies: Dependency[],
): string {
  if (specifier.startsWith(".") || specifier.startsWith("node:")) return specifier;
  let target = specifier;
  if (!specifier.startsWith("npm:")) {
    // Import-map entry: an exact key, or the longest key ending in "/" that prefixes it.
    const key = specifier in imports ? specifier : Object.keys(imports)
      .filter((k) => k.endsWith("/") && specifier.startsWith(k))
      .sort((a, b) => b.length - a.length)[0];
    if (key === undefined) {
      throw new Error(`${file}: "${specifier}" is neither relative, node:, npm: nor in deno.json`);
    }
    target = imports[key] + specifier.slice(key.length);
  }
  if (!target.startsWith("npm:")) {
    throw new Error(`${file}: "${specifier}" maps to ${target}; only npm: packages can be built`);
  }
  const { name, range, subpath } = parseNpmSpecifier(target);
  dependencies.push({ name, range });
  return name + subpath;
}

/** Replaces the import specifiers of `text` found by the TypeScript pre-processor. */
function mapSpecifiers(text: string, map: (specifier: string) => string): string {
  const info = ts.preProcessFile(text, true, true);
  const found: { start: number; specifier: string }[] = [];
  for (const ref of [...info.importedFiles, ...info.referencedFiles]) {
    // `pos` points at the opening quote of an import, at the path itself in a reference.
    const start = /["'`]/.test(text[ref.pos]) ? ref.pos + 1 : ref.pos;
    if (text.startsWith(ref.fileName, start)) found.push({ start, specifier: ref.fileName });
    else throw new Error(`Cannot locate the specifier "${ref.fileName}" in the source text`);
  }
  for (const { start, specifier } of found.sort((a, b) => b.start - a.start)) {
    const replaced = map(specifier);
    if (replaced !== specifier) {
      text = text.slice(0, start) + replaced + text.slice(start + specifier.length);
    }
  }
  return text;
}

/**
 * Copies the library and test sources into `stage`, replacing `X.ts` by `X.node.ts` where one
 * exists and rewriting package specifiers. Returns the staged TypeScript files.
 */
function stage(stageDir: string, imports: Record<string, string>): Map<string, StagedFile> {
  const sources = ["mod.ts", ...walk("src"), ...walk("tests"), ...walk("bench")];
  const present = new Set(sources);
  const staged = new Map<string, StagedFile>();
  for (const path of sources) {
    if (!path.endsWith(".ts") || path.endsWith(".node.ts")) continue;
    const nodeVariant = path.replace(/\.ts$/, ".node.ts");
    const from = present.has(nodeVariant) ? nodeVariant : path;
    const dependencies: Dependency[] = [];
    const source = Deno.readTextFileSync(`${root}/${from}`);
    let text = source;
    let error: Error | undefined;
    try {
      text = mapSpecifiers(
        source,
        (specifier) => rewriteSpecifier(specifier, from, imports, dependencies),
      );
    } catch (caught) {
      // A scratch file no build root reaches may import anything: complain only if reached.
      error = caught as Error;
    }
    write(`${stageDir}/${path}`, text);
    staged.set(path, { path, dependencies, error });
  }
  // NodeNext reads .ts files as ES modules only under a package.json saying so.
  write(`${stageDir}/package.json`, JSON.stringify({ type: "module" }));
  // Deno's `import.meta.main` is not in Node's types; the blocks using it are dropped on emit.
  write(
    `${stageDir}/_deno_globals.d.ts`,
    "interface ImportMeta {\n  /** Deno: true in the entry module. */\n  readonly main: boolean;\n}\n",
  );
  return staged;
}

/** What `deno info --json` reports about npm packages. */
interface DenoInfo {
  modules?: { kind: string; npmPackage?: string }[];
  npmPackages?: Record<
    string,
    { name: string; version: string; dependencies: string[]; localPath?: string }
  >;
}

/** Resolves an `npm:` specifier through Deno (which downloads it if needed). */
async function denoInfo(
  specifier: string,
): Promise<{ rootId: string; packages: NonNullable<DenoInfo["npmPackages"]> }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-config", "--no-lock", specifier],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`deno info ${specifier} failed:\n${new TextDecoder().decode(output.stderr)}`);
  }
  const info: DenoInfo = JSON.parse(new TextDecoder().decode(output.stdout));
  const packages = info.npmPackages ?? {};
  const rootId = info.modules?.find((module) => module.kind === "npm")?.npmPackage;
  if (rootId === undefined || !(rootId in packages)) {
    throw new Error(`deno info did not resolve ${specifier}`);
  }
  return { rootId, packages };
}

/**
 * Makes the packages named by `specifiers` (with their dependencies) visible to the compiler
 * under `stage/node_modules`, as links into Deno's npm cache (Deno downloads them if needed).
 */
async function linkTypePackages(stageDir: string, specifiers: string[]): Promise<void> {
  for (const specifier of specifiers) {
    const { rootId, packages } = await denoInfo(specifier);
    const pending = [rootId];
    const seen = new Set<string>();
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const pkg = packages[id];
      if (!pkg?.localPath) continue; // an optional package for another platform
      const link = `${stageDir}/node_modules/${pkg.name}`;
      Deno.mkdirSync(dirname(link), { recursive: true });
      try {
        Deno.symlinkSync(pkg.localPath, link);
      } catch (error) {
        // Already linked (another version of the same package): the first one serves for types.
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      pending.push(...pkg.dependencies);
    }
  }
}

/** The parts of a package.json the build reads. */
interface PackageManifest {
  dependencies?: Record<string, string>;
  scripts?: Record<string, string>;
}

/**
 * Puts the runtime dependencies (and theirs, but not optional ones) in `out/node_modules`,
 * copied from Deno's npm cache, and returns their `name@version`s.
 *
 * Why: `npm install ./npm` links the folder instead of copying it, and npm installs nothing for
 * a linked folder outside the project, while Node resolves the package's own imports from its
 * real path: without these copies every import of `msgpackr` fails there. An install from the
 * packed tarball is unaffected (`node_modules` is never packed), and `npm install` inside the
 * folder, for the tests, keeps them.
 */
async function vendorDependencies(
  out: string,
  dependencies: Record<string, string>,
): Promise<string[]> {
  const chosen = new Map<string, { version: string; localPath: string }>();
  for (const [name, range] of Object.entries(dependencies)) {
    const { rootId, packages } = await denoInfo(`npm:${name}@${range}`);
    const pending = [rootId];
    while (pending.length > 0) {
      const pkg = packages[pending.pop()!];
      const seen = chosen.get(pkg.name);
      if (seen?.version === pkg.version) continue;
      if (seen) {
        throw new Error(
          `${pkg.name} is needed at ${seen.version} and ${pkg.version}: one node_modules level ` +
            "cannot hold both",
        );
      }
      if (!pkg.localPath || !exists(`${pkg.localPath}/package.json`)) {
        throw new Error(`${pkg.name}@${pkg.version} is not in Deno's npm cache`);
      }
      const manifest: PackageManifest = JSON.parse(
        Deno.readTextFileSync(`${pkg.localPath}/package.json`),
      );
      const scripts = ["preinstall", "install", "postinstall"].filter((s) => manifest.scripts?.[s]);
      if (scripts.length > 0) {
        throw new Error(
          `${pkg.name} has ${scripts.join("/")} scripts, which a copy does not run: vendor it ` +
            "with npm instead",
        );
      }
      chosen.set(pkg.name, { version: pkg.version, localPath: pkg.localPath });
      // Optional dependencies (msgpackr's native accelerator) are left out: the package works
      // without them, and they need their install scripts.
      const required = new Set(Object.keys(manifest.dependencies ?? {}));
      for (const id of pkg.dependencies) {
        if (required.has(packages[id]?.name)) pending.push(id);
      }
    }
  }
  for (const [name, { localPath }] of chosen) {
    const target = `${out}/node_modules/${name}`;
    if (exists(target)) Deno.removeSync(target, { recursive: true });
    copyDir(localPath, target);
  }
  return [...chosen].map(([name, { version }]) => `${name}@${version}`);
}

/** Copies a folder recursively (Deno has no `cp -r`). */
function copyDir(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isDirectory) copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else if (entry.isFile) Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** True for a top-level `if (import.meta.main) …` statement. */
function isMainGuard(statement: ts.Statement): boolean {
  if (!ts.isIfStatement(statement)) return false;
  const test = statement.expression;
  return ts.isPropertyAccessExpression(test) && test.name.text === "main" &&
    ts.isMetaProperty(test.expression) &&
    test.expression.keywordToken === ts.SyntaxKind.ImportKeyword;
}

/** Drops `if (import.meta.main)` blocks: on Node the `gibbs` bin runs the CLI. */
const dropMainGuards: ts.TransformerFactory<ts.SourceFile> = () => (file) => {
  const statements = file.statements.filter((statement) => !isMainGuard(statement));
  return statements.length === file.statements.length
    ? file
    : ts.factory.updateSourceFile(file, statements);
};

function formatDiagnostics(diagnostics: readonly ts.Diagnostic[], stageDir: string): string {
  return ts.formatDiagnosticsWithColorAndContext(diagnostics, {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => stageDir,
    getNewLine: () => "\n",
  }).replaceAll(stageDir + "/", "");
}

/**
 * Compiles the staged program into `outDir`. Returns the staged paths (relative) of the files
 * in the program.
 */
function compile(stageDir: string, roots: string[]): Set<string> {
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    // ES2023 is all of what Node 20 implements: a newer API (Promise.withResolvers, …) fails here.
    lib: ["lib.es2023.d.ts"],
    types: ["node"],
    typeRoots: [`${stageDir}/node_modules/@types`],
    strict: true,
    noImplicitOverride: true,
    skipLibCheck: true,
    declaration: true,
    allowImportingTsExtensions: true,
    rewriteRelativeImportExtensions: true,
    // The links made by linkTypePackages must be resolved from stage/node_modules.
    preserveSymlinks: true,
    rootDir: stageDir,
    outDir,
    newLine: ts.NewLineKind.LineFeed,
    // Errors are checked below: the library's stop the build, the tests' do not.
    noEmitOnError: false,
  };
  const host = ts.createCompilerHost(options);
  const program = ts.createProgram({
    rootNames: roots.map((path) => `${stageDir}/${path}`),
    options,
    host,
  });
  // The library must type-check against Node's own type definitions: its .d.ts files ship.
  // The tests and benchmarks are type-checked by `deno check`; under Node's definitions some
  // web types differ (undici's `Response.json()` returns `unknown` where Deno's returns `any`),
  // which is no reason not to run them on Node.
  const inTests = (d: ts.Diagnostic) => isDevPath(d.file?.fileName.slice(stageDir.length + 1));
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const fatal = diagnostics.filter((d) => !inTests(d));
  if (fatal.length > 0) {
    console.error(formatDiagnostics(fatal, stageDir));
    throw new Error(`TypeScript found ${fatal.length} problem(s) in the library's staged sources`);
  }
  const inTestFiles = new Set(diagnostics.filter(inTests).map((d) => d.file!.fileName));
  if (inTestFiles.size > 0) {
    const names = [...inTestFiles].map((name) => name.slice(stageDir.length + 1)).join(", ");
    console.warn(
      `note: ${diagnostics.length} type error(s) under Node's type definitions in ${names} ` +
        "(not fatal: deno check types the tests and benchmarks)",
    );
  }
  const result = program.emit(
    undefined,
    (fileName, text) => {
      const path = fileName.slice(outDir.length + 1);
      if (path.endsWith(".d.ts")) {
        // Tests and benchmarks need no declarations.
        if (isDevPath(path)) return;
        // TypeScript keeps `.ts` in declaration imports even when it rewrites them in the JS.
        text = mapSpecifiers(
          text,
          (specifier) => specifier.startsWith(".") ? specifier.replace(/\.ts$/, ".js") : specifier,
        );
      }
      write(fileName, text);
    },
    undefined,
    false,
    { before: [dropMainGuards] },
  );
  if (result.emitSkipped || result.diagnostics.length > 0) {
    console.error(formatDiagnostics(result.diagnostics, stageDir));
    throw new Error("TypeScript emitted nothing");
  }
  const inProgram = new Set<string>();
  for (const file of program.getSourceFiles()) {
    if (file.fileName.startsWith(stageDir + "/") && !file.fileName.includes("/node_modules/")) {
      inProgram.add(file.fileName.slice(stageDir.length + 1));
    }
  }
  return inProgram;
}

/** Reads an SPDX identifier from the first line of a license text, for the common ones. */
function licenseId(text: string): string {
  const first = text.trimStart().split("\n", 1)[0];
  if (/^MIT License/i.test(first)) return "MIT";
  if (/^Apache License/i.test(first)) return "Apache-2.0";
  if (/^ISC License/i.test(first)) return "ISC";
  return "SEE LICENSE IN LICENSE";
}

/** Collects the dependencies of the given staged files, checking their ranges agree. */
function collect(files: Iterable<StagedFile>): Record<string, string> {
  const found: Record<string, string> = {};
  for (const file of files) {
    for (const { name, range } of file.dependencies) {
      if (found[name] !== undefined && found[name] !== range) {
        throw new Error(`${name} is imported with two version ranges: ${found[name]} and ${range}`);
      }
      found[name] = range;
    }
  }
  return Object.fromEntries(Object.entries(found).sort(([a], [b]) => a.localeCompare(b)));
}

const BIN = `#!/usr/bin/env node
// The gibbs command line (the Deno build runs it from mod.ts under import.meta.main).
import process from "node:process";
import { main } from "../src/cli/main.js";

await main(process.argv.slice(2));
`;

async function build(): Promise<void> {
  const config: DenoConfig = JSON.parse(Deno.readTextFileSync(`${root}/deno.json`));
  const name = args.name ?? DEFAULT_NAME;
  if (!config.version) throw new Error("deno.json has no version");

  const stageDir = Deno.makeTempDirSync({ prefix: "gibbs_npm_" });
  try {
    const staged = stage(stageDir, config.imports ?? {});
    // The test files, and the fixtures (models that spawned workers load by URL, which no
    // import need lead to); helpers come along through their imports.
    const testRoots = [...staged.keys()].filter((path) =>
      path.startsWith("tests/") && (path.endsWith(".test.ts") || path.startsWith("tests/fixtures/"))
    );
    // Every benchmark script: some are only started by others (worker_swarm.ts, models.ts).
    const benchRoots = [...staged.keys()].filter((path) =>
      path.startsWith("bench/") && !BENCH_SKIPPED.has(path)
    );

    // Every package any staged file imports, plus Node's types, for the type checker.
    const wanted = new Map<string, string>();
    for (const file of staged.values()) {
      for (const { name, range } of file.dependencies) wanted.set(name, range);
    }
    await linkTypePackages(stageDir, [
      NODE_TYPES,
      ...DEPENDENCY_TYPES,
      ...[...wanted].map(([name, range]) => `npm:${name}@${range}`),
    ]);

    // Keep an npm install made in the output (for the tests' dependencies) across builds.
    for (const entry of safeReadDir(outDir)) {
      if (entry.name !== "node_modules" && entry.name !== "package-lock.json") {
        Deno.removeSync(`${outDir}/${entry.name}`, { recursive: true });
      }
    }

    const compiled = compile(stageDir, [
      "_deno_globals.d.ts",
      ...LIBRARY_ROOTS,
      ...testRoots,
      ...benchRoots,
    ]);
    const inBuild = [...staged.values()].filter((file) => compiled.has(file.path));
    for (const file of inBuild) if (file.error) throw file.error;
    const dependencies = collect(inBuild.filter((file) => !isDevPath(file.path)));
    const testDependencies = collect(inBuild.filter((file) => isDevPath(file.path)));
    const devDependencies = Object.fromEntries(
      Object.entries(testDependencies).filter(([dep]) => !(dep in dependencies)),
    );

    // Test helpers that are not TypeScript (peers in Python or plain JS, fixtures) keep their
    // paths relative to the tests; a node_modules folder (the zeromq.js peer) is linked.
    for (const path of walk("tests")) {
      if (!path.endsWith(".ts")) copy(`${root}/${path}`, `${outDir}/${path}`);
    }
    // The example web pages, which the browser tests load (not part of the package).
    for (const path of walk("examples")) {
      if (path.endsWith(".html")) copy(`${root}/${path}`, `${outDir}/${path}`);
    }
    for (const dir of findDirs("tests", "node_modules")) {
      const link = `${outDir}/${dir}`;
      Deno.mkdirSync(dirname(link), { recursive: true });
      Deno.symlinkSync(`${root}/${dir}`, link);
    }

    // The browser build: one ES module for web pages (a Worker over WebSocket).
    Deno.mkdirSync(`${outDir}/browser`, { recursive: true });
    Deno.writeFileSync(`${outDir}/browser/gibbs.js`, await buildBrowserBundle());

    write(`${outDir}/bin/gibbs.js`, BIN);
    Deno.chmodSync(`${outDir}/bin/gibbs.js`, 0o755);
    const extras: string[] = [];
    for (const file of ["README.md", "LICENSE"]) {
      if (exists(`${root}/${file}`)) {
        copy(`${root}/${file}`, `${outDir}/${file}`);
        extras.push(file);
      } else {
        console.warn(`warning: no ${file} at the root to put in the package`);
      }
    }
    const license = config.license ??
      (exists(`${root}/LICENSE`) ? licenseId(Deno.readTextFileSync(`${root}/LICENSE`)) : undefined);

    const pkg = {
      name,
      version: config.version,
      description: config.description ??
        "gibbs for Node: scale a model (or any code) across processes and machines over ZeroMQ (ZMTP 3.1, pure TypeScript)",
      license,
      keywords: ["zeromq", "zmq", "zmtp", "gibbs", "dealer", "router", "rpc", "workers"],
      type: "module",
      main: "./mod.js",
      types: "./mod.d.ts",
      exports: {
        ".": { types: "./mod.d.ts", import: "./mod.js", default: "./mod.js" },
        "./browser": "./browser/gibbs.js",
        "./package.json": "./package.json",
      },
      bin: { gibbs: "./bin/gibbs.js" },
      // The tests and benchmarks stay out of the tarball.
      files: ["mod.js", "mod.d.ts", "src/", "bin/", "browser/", ...extras],
      engines: { node: NODE_ENGINES },
      dependencies,
      devDependencies,
    };
    write(`${outDir}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
    const vendored = await vendorDependencies(outDir, dependencies);
    const deps = Object.keys(dependencies).join(", ") || "none";
    console.log(
      `Built ${name}@${config.version} in ${outDir}: ${compiled.size} modules, ` +
        `${testRoots.filter((path) => path.endsWith(".test.ts")).length} test files, ` +
        `${benchRoots.length} benchmark scripts; ` +
        `dependencies: ${deps} (copied into node_modules for a folder install: ` +
        `${vendored.join(", ") || "none"})`,
    );
  } finally {
    Deno.removeSync(stageDir, { recursive: true });
  }
}

/** True for a path (relative to the root or the output) of a test or benchmark file. */
function isDevPath(path: string | undefined): boolean {
  return path !== undefined && (path.startsWith("tests/") || path.startsWith("bench/"));
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function safeReadDir(path: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(path)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** Folders named `name` under `dir` (relative to the root), not descending into them. */
function findDirs(dir: string, name: string): string[] {
  const found: string[] = [];
  for (const entry of safeReadDir(`${root}/${dir}`)) {
    if (!entry.isDirectory) continue;
    const path = `${dir}/${entry.name}`;
    if (entry.name === name) found.push(path);
    else if (!SKIPPED_DIRS.has(entry.name)) found.push(...findDirs(path, name));
  }
  return found;
}

if (import.meta.main) await build();
