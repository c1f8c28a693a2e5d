/**
 * The one interface between the library and its runtime (Deno, Node, a browser): byte and
 * message streams, timers, signals and processes. Every runtime call of the library goes
 * through it.
 *
 * @module
 */

import type { Endpoint } from "./endpoint.ts";
import type { TransportError } from "./errors.ts";

/** A connected byte stream (a TCP connection or a Unix domain socket). */
export interface ByteStream {
  /** Tells it from a {@linkcode MessageStream}. */
  readonly kind: "bytes";
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

/**
 * A connected message stream: a WebSocket (`ws://`, `wss://`) whose binary messages each carry
 * one ZWS 2.0 frame. It has the shape of a {@linkcode ByteStream}, with whole messages for
 * chunks.
 */
export interface MessageStream {
  /** Tells it from a {@linkcode ByteStream}. */
  readonly kind: "messages";
  /** Human-readable address of the other end. */
  readonly remote: string;
  /** The WebSocket subprotocol both sides agreed on, e.g. `"ZWS2.0/NULL"`. */
  readonly protocol: string;
  /**
   * Starts delivering received messages, each one whole binary WebSocket message that the
   * receiver owns. `onEnd` is called once, when the peer closes (no error) or the stream fails
   * (a `WebSocketError` when the peer broke a rule: a text message, one too large).
   */
  start(onMessage: (message: Uint8Array) => void, onEnd: (error?: Error) => void): void;
  /**
   * Stops reading until {@linkcode MessageStream.resume}. In a browser it does nothing: the
   * WebSocket API has no way to stop reading.
   */
  pause(): void;
  /** Resumes reading after {@linkcode MessageStream.pause}. */
  resume(): void;
  /**
   * Sends each entry as one binary WebSocket message, in order; resolves once they are handed to
   * the system (in a browser: once its send buffer is below a high-water mark). The stream owns
   * the entries from then on: a client masks them in place. Rejects on failure.
   */
  write(messages: Uint8Array[]): Promise<void>;
  /** Closes the stream at once. Safe to call more than once. */
  close(): void;
}

/** Either kind of connected stream. */
export type Stream = ByteStream | MessageStream;

/** Options a caller gives when binding a `ws://` or `wss://` endpoint. */
export interface WebSocketBindOptions {
  /**
   * Origins a browser page may connect from, as `scheme://host[:port]`, or `"*"` for any.
   * Default: pages served from the same host name as the WebSocket endpoint (any port).
   * Clients that send no `Origin` (every non-browser one) are always let in.
   */
  origins?: readonly string[];
  /** `wss://`: the certificate chain, a PEM file. */
  certFile?: string;
  /** `wss://`: the private key, a PEM file. */
  keyFile?: string;
}

/** Options a caller gives when connecting to a `wss://` endpoint. */
export interface WebSocketConnectOptions {
  /** A PEM file of certificate authorities to trust besides the system's (self-signed hubs). */
  caFile?: string;
}

/** What the socket layer adds to {@linkcode WebSocketBindOptions} when it binds. */
export interface WebSocketListenOptions extends WebSocketBindOptions {
  /** Subprotocols accepted, best first: the best one the client offers is chosen. */
  protocols: readonly string[];
  /** Largest WebSocket message accepted, in bytes. */
  maxMessageSize: number;
  /** Milliseconds a client has to complete its HTTP upgrade request (0: no limit). */
  handshakeTimeout: number;
  /** Reports an upgrade refused before any stream existed (bad origin, no common protocol). */
  onRejected(remote: string, code: string, reason: string): void;
}

/** What the socket layer adds to {@linkcode WebSocketConnectOptions} when it connects. */
export interface WebSocketDialOptions extends WebSocketConnectOptions {
  /** Subprotocols offered, in the order they are sent. */
  protocols: readonly string[];
  /** Largest WebSocket message accepted, in bytes. */
  maxMessageSize: number;
  /** Milliseconds the server has to answer the upgrade request (0: no limit). */
  handshakeTimeout: number;
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
  readonly name: "deno" | "node" | "browser";
  /**
   * Opens a listener; `onStream` receives each accepted stream, `onError` each failure to
   * accept one (the listener goes on accepting). A `ws://` or `wss://` endpoint needs `ws` and
   * gives message streams.
   *
   * @throws {TransportError} when the endpoint cannot be bound (`EADDRINUSE`, `EACCES`, ...)
   */
  listen(
    endpoint: Endpoint,
    onStream: (stream: Stream) => void,
    onError?: (error: TransportError) => void,
    ws?: WebSocketListenOptions,
  ): Promise<Listener>;
  /**
   * Connects to an endpoint; a `ws://` or `wss://` one needs `ws`.
   *
   * @throws {TransportError} when it cannot (`ECONNREFUSED`, `ENOENT`, ...)
   */
  connect(endpoint: Endpoint, ws?: WebSocketDialOptions): Promise<Stream>;
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
