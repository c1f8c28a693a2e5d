/**
 * The one interface between the library and its runtime (Deno or Node): byte streams, timers,
 * signals and processes. Every runtime call of the library goes through it.
 *
 * @module
 */

import type { Endpoint } from "./endpoint.ts";
import type { TransportError } from "./errors.ts";

/** A connected byte stream (a TCP connection or a Unix domain socket). */
export interface ByteStream {
  /** Human-readable address of the other end. */
  readonly remote: string;
  /**
   * Starts delivering received bytes. A chunk is only valid during the call. `onEnd` is called
   * once, when the peer closes (no error) or the stream fails. Before each read the adapter may
   * ask `readTarget` for a buffer to read straight into (null: its own buffer); what it read
   * there is then delivered as a view of that buffer.
   */
  start(
    onData: (chunk: Uint8Array) => void,
    onEnd: (error?: Error) => void,
    readTarget?: () => Uint8Array | null,
  ): void;
  /** Stops reading until {@linkcode ByteStream.resume}: the peer's writes then back up. */
  pause(): void;
  /** Resumes reading after {@linkcode ByteStream.pause}. */
  resume(): void;
  /** Writes chunks in order; resolves once they are handed to the system. Rejects on failure. */
  write(chunks: Uint8Array[]): Promise<void>;
  /** Closes the stream at once. Safe to call more than once. */
  close(): void;
}

/** A listening endpoint accepting streams. */
export interface Listener {
  /** The endpoint really bound (the real port when port 0 was asked for). */
  readonly endpoint: Endpoint;
  /**
   * Stops accepting; streams already accepted stay open. Resolves once the endpoint is
   * released (its port or path can be bound again).
   */
  close(): Promise<void>;
}

/** A child process started through the runtime. */
export interface ChildProcess {
  /** Its process id. */
  readonly pid: number;
  /** Sends a signal (default SIGTERM); ignores a process that is gone. */
  kill(signal?: "SIGTERM" | "SIGKILL" | "SIGINT"): void;
  /** Resolves with the exit code (or the terminating signal's name) when it ends. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

/** Options for {@linkcode Runtime.spawn}. */
export interface SpawnOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Where its stdout and stderr go (default: inherited). */
  stdio?: "inherit" | "ignore";
}

/**
 * A module running on a thread of its own (a Web Worker on Deno, `node:worker_threads` on
 * Node). Messages are copied by structured clone; buffers in `transfer` are moved instead.
 */
export interface Thread {
  /** Sends a message to the thread. */
  post(message: unknown, transfer?: ArrayBuffer[]): void;
  /** Receives the thread's messages. */
  onMessage(handler: (message: unknown) => void): void;
  /** Learns that the thread failed (an uncaught error) or ended on its own. */
  onError(handler: (error: Error) => void): void;
  /** Stops the thread at once. */
  terminate(): Promise<void>;
}

/** Inside a thread: the way to the thread that started it. */
export interface ThreadPort {
  /** Sends a message to the parent. */
  post(message: unknown, transfer?: ArrayBuffer[]): void;
  /** Receives the parent's messages. */
  onMessage(handler: (message: unknown) => void): void;
}

/**
 * A value that follows the asynchronous flow of a call: what `run` sets is what `get` returns
 * anywhere in the code `fn` runs, synchronously or after an `await` (AsyncLocalStorage).
 */
export interface AsyncContext<T> {
  /** Runs `fn` with `value` as the current value. */
  run<R>(value: T, fn: () => R): R;
  /** The current value, or undefined outside `run`. */
  get(): T | undefined;
}

/** An HTTP handler in the fetch style. */
export type HttpHandler = (request: Request) => Response | Promise<Response>;

/** A running HTTP server. */
export interface HttpServer {
  /** The port really bound. */
  readonly port: number;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Everything runtime-specific the library needs. */
export interface Runtime {
  /** Runtime name, for messages. */
  readonly name: "deno" | "node";
  /**
   * Opens a listener; `onStream` receives each accepted stream, `onError` each failure to
   * accept one (the listener goes on accepting).
   *
   * @throws {TransportError} when the endpoint cannot be bound (`EADDRINUSE`, `EACCES`, ...)
   */
  listen(
    endpoint: Endpoint,
    onStream: (stream: ByteStream) => void,
    onError?: (error: TransportError) => void,
  ): Promise<Listener>;
  /**
   * Connects to an endpoint.
   *
   * @throws {TransportError} when it cannot (`ECONNREFUSED`, `ENOENT`, ...)
   */
  connect(endpoint: Endpoint): Promise<ByteStream>;
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls `fn` every `ms` milliseconds without keeping the process alive; returns a stopper. */
  every(ms: number, fn: () => void): () => void;
  /**
   * Runs `fn` once the current turn of the event loop is over (after the microtasks queued now
   * and this turn's I/O callbacks), with one `setImmediate` for all callbacks of a turn.
   */
  afterTurn(fn: () => void): void;
  /** Runs `handler` on SIGINT and SIGTERM; returns a function that removes it. */
  onShutdownSignal(handler: (signal: string) => void): () => void;
  /** Makes a value that follows asynchronous calls (see {@linkcode AsyncContext}). */
  asyncContext<T>(): AsyncContext<T>;
  /** Starts `url` (a module of this library) on a thread of its own. */
  startThread(url: URL): Thread;
  /** In a thread started by {@linkcode Runtime.startThread}: its port; null elsewhere. */
  parentPort(): ThreadPort | null;
  /** Starts a process of this same runtime running `script` (a path or URL) with `args`. */
  spawnScript(script: string, args: string[], options?: SpawnOptions): ChildProcess;
  /**
   * Serves HTTP on host:port. The handler's `request.signal` aborts when the client goes away
   * before the response is sent; the request body is streamed, not read ahead.
   *
   * @throws {TransportError} when the address cannot be bound (`EADDRINUSE`, `EACCES`, ...)
   */
  serveHttp(host: string, port: number, handler: HttpHandler): Promise<HttpServer>;
  /**
   * Runs `handler` synchronously when the process exits by itself or through
   * `Deno.exit`/`process.exit` (Node: also after an uncaught error). Not on a fatal signal: a
   * process killed by one runs no code. Returns a function that removes it.
   */
  onExit(handler: () => void): () => void;
  /** This process's id. */
  pid(): number;
  /**
   * The id of this process's parent, read afresh: it changes (to 1 or a subreaper's) once the
   * parent has exited.
   */
  ppid(): number;
  /** True while a process with this id exists (it may belong to another user). */
  processExists(pid: number): boolean;
  /** Command-line arguments after the script. */
  args(): string[];
  /** The current working directory. */
  cwd(): string;
  /** Ends the process. */
  exit(code: number): never;
  /** Reads a UTF-8 text file (key files). */
  readTextFile(path: string): Promise<string>;
  /**
   * Writes a file only its owner may read (mode 0600), for secret keys. Fails if it exists,
   * unless `overwrite`.
   */
  writeSecretFile(path: string, text: string, overwrite?: boolean): Promise<void>;
  /** An environment variable, or undefined. */
  env(name: string): string | undefined;
}
