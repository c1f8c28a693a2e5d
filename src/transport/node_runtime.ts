/**
 * The Node adapter: the npm build's counterpart of `deno_runtime.ts`, on `node:net`,
 * `node:tls`, `node:child_process`, `node:http` and `process`. It mirrors the Deno adapter's
 * semantics; `ws://` and `wss://` run over its tcp and tls streams (`ws_transport.ts`).
 *
 * @module
 */

import { spawn } from "node:child_process";
import { AsyncLocalStorage } from "node:async_hooks";
import { lstatSync, readFileSync, unlinkSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import {
  connect as netConnect,
  createServer,
  isIP,
  type Server,
  Socket,
  type SocketConstructorOpts,
} from "node:net";
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from "node:tls";
import process from "node:process";
import { Readable } from "node:stream";
import { clearInterval, setImmediate, setInterval, setTimeout } from "node:timers";
import { fileURLToPath } from "node:url";
import { parentPort as nodeParentPort, Worker as NodeWorker } from "node:worker_threads";
import { type Endpoint, formatEndpoint } from "./endpoint.ts";
import { type TransportError, transportError } from "./errors.ts";
import { ReadBuffer } from "./read_buffer.ts";
import { exitHandlers } from "./exit_handlers.ts";
import { waitPortReleased } from "./port_release.ts";
import { turnQueue } from "./turn.ts";
import type {
  AsyncContext,
  ByteStream,
  ChildProcess,
  HttpHandler,
  HttpServer,
  Listener,
  Runtime,
  SpawnOptions,
  Stream,
  Thread,
  ThreadPort,
  WebSocketDialOptions,
  WebSocketListenOptions,
} from "./runtime_types.ts";
import {
  type ByteTransport,
  connectWebSocket,
  listenWebSocket,
  type TlsClientOptions,
  type TlsServerFiles,
} from "./ws_transport.ts";

/**
 * The `onread` option of a socket. Before each read Node calls `buffer` for the memory to read
 * into: the caller's read target (the rest of a large frame body, read in place) or our own
 * buffer; then `callback`, which hands the bytes to `onData`. As with Deno's adapter, a chunk is
 * only valid during the call.
 */
class ReadInto {
  /** Receives each chunk; set by {@linkcode NodeStream.start}. */
  onData: (chunk: Uint8Array) => void = () => {};
  /** Where the caller wants the next bytes, if anywhere; set by {@linkcode NodeStream.start}. */
  readTarget: (() => Uint8Array | null) | undefined;
  // Node's default reads allocate a fresh 64 KiB Buffer each, which halves bulk throughput on
  // loopback; reusing our own buffer avoids that.
  #reads = new ReadBuffer();

  /** Picks the buffer of the next read (Node calls it once at first, then after each read). */
  readonly buffer = (): Uint8Array => this.#reads.next(this.readTarget?.());

  /** Returning false would pause the socket: flow control goes through pause() instead. */
  readonly callback = (bytesRead: number, buffer: Uint8Array): boolean => {
    this.onData(buffer.subarray(0, bytesRead));
    this.#reads.filled(buffer, bytesRead);
    return true;
  };
}

class NodeStream implements ByteStream {
  readonly kind = "bytes" as const;
  readonly remote: string;
  #socket: Socket;
  #readInto: ReadInto | null;
  #error: Error | undefined;
  #onEnd: ((error?: Error) => void) | null = null;
  #ended = false;
  #closed = false;
  /** Writes not yet settled, failed if the socket closes first. */
  #writers = new Set<{ reject: (error: Error) => void }>();

  /**
   * Wraps a paused socket (so that no byte is read before `start`) that reads into `readInto`'s
   * buffer, or, without one, emits 'data'.
   */
  constructor(socket: Socket, readInto: ReadInto | null, remote: string) {
    this.#socket = socket;
    this.#readInto = readInto;
    this.remote = remote;
    // Listen from the start: an 'error' without a listener would crash the process. The error is
    // reported through onEnd when 'close' follows.
    socket.on("error", (error) => {
      this.#error ??= error;
    });
    socket.on("close", () => this.#end());
  }

  start(
    onData: (chunk: Uint8Array) => void,
    onEnd: (error?: Error) => void,
    readTarget?: () => Uint8Array | null,
  ): void {
    this.#onEnd = onEnd;
    if (this.#ended) {
      queueMicrotask(() => this.#end());
      return;
    }
    if (this.#readInto) {
      this.#readInto.onData = onData;
      this.#readInto.readTarget = readTarget;
    } else {
      // Node's 'data' Buffers are fresh for each read: hand them over (no read target then).
      this.#socket.on("data", onData);
    }
    // Also in 'onread' mode: a flowing socket is what makes Node report the peer's end.
    this.#socket.resume();
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /**
   * Hands the chunks to the socket at once (corked, so several leave in one `writev`) and
   * resolves once the system has taken all of them. Rejects if the connection fails first.
   *
   * "Taken by the system" matters: large frames are sent without a copy and the sender may reuse
   * its bytes once this resolves, while Node may still hold them queued in user space. (Node
   * reports a write the kernel took at once on the next tick: the pipe, not this adapter, waits
   * for the end of the turn before writing the messages queued meanwhile.)
   */
  write(chunks: Uint8Array[]): Promise<void> {
    const socket = this.#socket;
    if (this.#closed || socket.destroyed) {
      return Promise.reject(this.#error ?? new Error(`Connection to ${this.remote} is closed`));
    }
    // The peer ended its side and Node ended ours in reply: 'close' follows. Deno would still
    // take the bytes (and lose them); writing now would turn the orderly end into an error.
    if (socket.writableEnded || chunks.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = { reject };
      this.#writers.add(waiter);
      const last = chunks.length - 1;
      // Node calls a write's callback once the system took its bytes (or with the error).
      const onWritten = (error?: Error | null) => {
        if (!this.#writers.delete(waiter)) return;
        if (error) reject(error);
        else resolve();
      };
      if (last > 0) socket.cork();
      for (let i = 0; i < last; i++) socket.write(chunks[i]);
      socket.write(chunks[last], onWritten);
      if (last > 0) socket.uncork();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // destroy() emits 'close' (and so onEnd) asynchronously, without an error.
    this.#socket.destroy();
  }

  /** Runs once the socket is closed: fails pending writes, then reports the end once. */
  #end(): void {
    this.#ended = true;
    if (this.#writers.size > 0) {
      const error = this.#error ?? new Error(`Connection to ${this.remote} closed`);
      for (const writer of this.#writers) writer.reject(error);
      this.#writers.clear();
    }
    const onEnd = this.#onEnd;
    if (onEnd === null) return;
    this.#onEnd = null;
    // Our own close() is an orderly end, as with Deno, even if the socket saw an error after it.
    onEnd(this.#closed ? undefined : this.#error);
  }
}

/**
 * Wraps a connected socket. Node reports no address for Unix sockets: the connecting side names
 * the path, as Deno does, the accepting side says "peer".
 */
function wrap(
  socket: Socket,
  readInto: ReadInto | null,
  endpoint: Endpoint,
  connecting: boolean,
): NodeStream {
  if (endpoint.transport === "ipc") {
    return new NodeStream(socket, readInto, `unix:${connecting ? endpoint.path : "peer"}`);
  }
  socket.setNoDelay(true);
  return new NodeStream(socket, readInto, `${socket.remoteAddress}:${socket.remotePort}`);
}

/**
 * Moves the handle of a socket accepted by a server (with `pauseOnConnect`) into a new socket
 * reading into `readInto`. Node offers `onread` only to sockets that it constructs for the
 * caller (`connect`, `new Socket`), not to those a server accepts; this uses the long-standing
 * `_handle` field and `handle` option (as Node's own cluster and child_process code does) and
 * returns null where they are missing, leaving the accepted socket as it is.
 */
function adopt(accepted: Socket, readInto: ReadInto): Socket | null {
  const internals = accepted as unknown as { _handle?: object | null };
  const handle = internals._handle;
  if (typeof handle !== "object" || handle === null) return null;
  internals._handle = null;
  const options = { handle, pauseOnCreate: true, readable: true, writable: true, onread: readInto };
  return new Socket(options as SocketConstructorOpts);
}

/** Resolves once `server` listens, rejects on the error that prevented it. */
function listening(server: Server, listen: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.once("listening", () => {
      server.off("error", onError);
      resolve();
    });
    listen();
  });
}

async function listen(
  endpoint: Endpoint,
  onStream: (s: Stream) => void,
  onError?: (error: TransportError) => void,
  ws?: WebSocketListenOptions,
): Promise<Listener> {
  if (endpoint.transport === "ws" || endpoint.transport === "wss") {
    if (!ws) throw new TypeError(`Listening on ${formatEndpoint(endpoint)} needs ws options`);
    return listenWebSocket(endpoint, onStream, ws, bytes(onError));
  }
  const server = createServer({ pauseOnConnect: true }, (accepted) => {
    const readInto = new ReadInto();
    const socket = adopt(accepted, readInto);
    onStream(
      socket ? wrap(socket, readInto, endpoint, false) : wrap(accepted, null, endpoint, false),
    );
  });
  let bound: Endpoint;
  try {
    if (endpoint.transport === "tcp") {
      await listening(server, () => server.listen({ host: endpoint.host, port: endpoint.port }));
      const address = server.address();
      bound = { ...endpoint, port: typeof address === "object" && address ? address.port : 0 };
    } else {
      removeStaleSocket(endpoint.path);
      await listening(server, () => server.listen({ path: endpoint.path }));
      bound = endpoint;
    }
  } catch (error) {
    throw transportError(error, `Cannot bind ${formatEndpoint(endpoint)}`);
  }
  let closed = false;
  // A failed accept (e.g. out of file descriptors) is emitted as 'error' on the server: without a
  // listener it would crash the process. Node keeps accepting afterwards.
  server.on("error", (error) => {
    if (!closed) onError?.(transportError(error, `Cannot accept on ${formatEndpoint(bound)}`));
  });
  return {
    endpoint: bound,
    async close() {
      if (!closed) {
        closed = true;
        server.close();
        if (endpoint.transport === "ipc") removeStaleSocket(endpoint.path);
      }
      // libuv closes the listening handle on the next turn of the loop; the port is free then.
      // (The server's own 'close' event waits for every accepted connection, which stay open.)
      await new Promise((resolve) => setImmediate(resolve));
      if (bound.transport === "tcp") {
        const { host, port } = bound;
        await waitPortReleased(() => tcpPortFree(host, port));
      }
    },
  };
}

/** True if `host:port` can be bound now (bound and closed at once to find out). */
function tcpPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    // Another failure than EADDRINUSE is not ours to wait for: the next bind reports it.
    probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code !== "EADDRINUSE"));
    probe.listen({ host, port }, () => probe.close(() => resolve(true)));
  });
}

/** libzmq unlinks a leftover socket file before binding an ipc endpoint; so do we. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}

function connect(endpoint: Endpoint, ws?: WebSocketDialOptions): Promise<Stream> {
  if (endpoint.transport === "ws" || endpoint.transport === "wss") {
    if (!ws) throw new TypeError(`Connecting to ${formatEndpoint(endpoint)} needs ws options`);
    return connectWebSocket(endpoint, ws, bytes());
  }
  return new Promise((resolve, reject) => {
    const readInto = new ReadInto();
    const socket = endpoint.transport === "tcp"
      ? netConnect({ host: endpoint.host, port: endpoint.port, onread: readInto })
      : netConnect({ path: endpoint.path, onread: readInto });
    // Paused, it does not start reading once connected; start() resumes it.
    socket.pause();
    const onError = (error: Error) => {
      socket.destroy();
      reject(transportError(error, `Cannot connect to ${formatEndpoint(endpoint)}`));
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(wrap(socket, readInto, endpoint, true));
    });
  });
}

/** A TLS socket as a byte stream (no `onread` for those: they read through 'data'). */
function wrapTls(socket: TLSSocket): NodeStream {
  socket.setNoDelay(true);
  return new NodeStream(socket, null, `${socket.remoteAddress}:${socket.remotePort}`);
}

/** The tcp and tls streams the WebSocket transport runs on. */
function bytes(onError?: (error: TransportError) => void): ByteTransport {
  return {
    async listen(host: string, port: number, tls: TlsServerFiles | undefined, onStream) {
      const name = `${tls ? "wss" : "ws"}://${host}:${port}`;
      if (!tls) {
        const listener = await listen(
          { transport: "tcp", host, port },
          (s) => onStream(s as ByteStream),
          onError,
        );
        return {
          port: (listener.endpoint as { port: number }).port,
          close: () => listener.close(),
        };
      }
      const server = createTlsServer(
        { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
        (socket) => onStream(wrapTls(socket)),
      );
      try {
        await listening(server, () => server.listen({ host, port }));
      } catch (error) {
        throw transportError(error, `Cannot bind ${name}`);
      }
      let closed = false;
      // A client failing its TLS handshake is reported here; it never becomes a stream.
      server.on("tlsClientError", () => {});
      server.on("error", (error) => {
        if (!closed) onError?.(transportError(error, `Cannot accept on ${name}`));
      });
      const address = server.address();
      return {
        port: typeof address === "object" && address ? address.port : port,
        async close() {
          if (!closed) {
            closed = true;
            server.close();
          }
          await new Promise((resolve) => setImmediate(resolve));
        },
      };
    },
    connect(host: string, port: number, tls: TlsClientOptions | undefined) {
      if (!tls) return connect({ transport: "tcp", host, port }) as Promise<ByteStream>;
      return new Promise((resolve, reject) => {
        const socket = tlsConnect({
          host,
          port,
          // SNI takes names only; an address is checked against the certificate's IP entries.
          servername: isIP(tls.serverName) ? undefined : tls.serverName,
          ca: tls.caFile ? [readFileSync(tls.caFile)] : undefined,
        });
        socket.pause();
        const onFail = (error: Error) => {
          socket.destroy();
          reject(transportError(error, `Cannot connect to wss://${host}:${port}`));
        };
        socket.once("error", onFail);
        socket.once("secureConnect", () => {
          socket.off("error", onFail);
          resolve(wrapTls(socket));
        });
      });
    },
  };
}

function spawnScript(script: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const path = script.startsWith("file:") ? fileURLToPath(script) : script;
  const output = options.stdio === "ignore" ? "ignore" : "inherit";
  const child = spawn(process.execPath, [path, ...args], {
    // Deno.Command adds `env` to the inherited environment; Node's option replaces it.
    env: options.env ? { ...process.env, ...options.env } : process.env,
    stdio: ["ignore", output, output],
  });
  // A failed spawn is also emitted as 'error', which must not crash the parent.
  child.on("error", () => {});
  if (child.pid === undefined) throw new Error(`Cannot start ${process.execPath} ${path}`);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code: signal ? null : code, signal }));
  });
  return {
    pid: child.pid,
    kill(signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    exited,
  };
}

async function serveHttp(host: string, port: number, handler: HttpHandler): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    respond(req, res, host, handler).catch((error) => {
      console.error(error);
      res.destroy();
    });
  });
  try {
    await listening(server, () => server.listen({ host, port }));
  } catch (error) {
    throw transportError(error, `Cannot serve HTTP on ${host}:${port}`);
  }
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** How long the rest of a refused upload is read (and dropped) before its connection closes. */
const UPLOAD_DRAIN_MS = 1000;

/** Runs `handler` on a fetch `Request` made from `req` and writes its `Response` to `res`. */
async function respond(
  req: IncomingMessage,
  res: ServerResponse,
  host: string,
  handler: HttpHandler,
): Promise<void> {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  const method = req.method ?? "GET";
  // The body is streamed, as Deno.serve does: the handler decides how much of it to read.
  const body = method === "GET" || method === "HEAD"
    ? undefined
    : Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>;
  // Like Deno.serve's, the request's signal aborts when the client goes away first.
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const url = new URL(req.url ?? "/", `http://${req.headers.host ?? host}`);
  // `duplex` is required by Node's fetch for a streamed body; Node's types do not have it yet.
  const init = { method, headers, body, signal: abort.signal, duplex: "half" };
  const request = new Request(url, init as RequestInit);
  let response: Response;
  try {
    response = await handler(request);
  } catch (error) {
    // Deno.serve's default onError: log, answer 500.
    console.error(error);
    response = new Response("Internal Server Error", { status: 500 });
  }
  // A handler that answered before the whole body arrived (a body over its limit): the rest of
  // the upload is read and dropped for a moment, so that the client, still sending, gets to
  // read the answer; then the connection closes, however much is still coming.
  if (!req.complete) {
    res.shouldKeepAlive = false;
    res.once("finish", () => {
      req.resume();
      setTimeout(() => req.socket.destroy(), UPLOAD_DRAIN_MS).unref();
    });
  }
  res.statusCode = response.status;
  if (response.statusText) res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") res.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (response.body === null || method === "HEAD") {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off("drain", go).off("close", go);
            resolve();
          };
          res.on("drain", go).on("close", go);
        });
      }
      if (res.destroyed) return void reader.cancel().catch(() => {});
    }
  } catch (error) {
    console.error(error);
    res.destroy();
    return;
  }
  res.end();
}

/**
 * Exit handlers, run by one 'exit' listener (Node emits it on process.exit, a normal end and
 * after an uncaught error).
 */
const onExit = exitHandlers(
  (run) => process.on("exit", run),
  (run) => process.off("exit", run),
);

function processExists(pid: number): boolean {
  try {
    // Signal 0 checks that the process exists without signalling it.
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // Not ours to signal, but there.
    return (error as { code?: string }).code === "EPERM";
  }
}

function startThread(url: URL): Thread {
  const worker = new NodeWorker(url);
  let onError: ((error: Error) => void) | undefined;
  let terminating = false;
  // Handled here: without an 'error' listener, an error in the thread ends the process.
  worker.on("error", (error) => onError?.(error));
  worker.on("exit", (code) => {
    if (!terminating) onError?.(new Error(`thread exited with code ${code}`));
  });
  return {
    post: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage(handler) {
      worker.on("message", handler);
    },
    onError(handler) {
      onError = handler;
    },
    async terminate() {
      terminating = true;
      await worker.terminate();
    },
  };
}

function parentPort(): ThreadPort | null {
  const port = nodeParentPort;
  if (port === null) return null;
  return {
    post: (message, transfer) => port.postMessage(message, transfer ?? []),
    onMessage(handler) {
      port.on("message", handler);
    },
  };
}

/** The Node runtime adapter. */
export const nodeRuntime: Runtime = {
  name: "node",
  listen,
  connect,
  now: () => performance.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
  afterTurn: turnQueue(setImmediate),
  onShutdownSignal(handler) {
    const onInt = () => handler("SIGINT");
    const onTerm = () => handler("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    return () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    };
  },
  asyncContext<T>(): AsyncContext<T> {
    // Both runtimes have Node's AsyncLocalStorage; it is what follows a call across awaits.
    const storage = new AsyncLocalStorage<T>();
    return { run: (value, fn) => storage.run(value, fn), get: () => storage.getStore() };
  },
  startThread,
  parentPort,
  spawnScript,
  serveHttp,
  onExit,
  pid: () => process.pid,
  ppid: () => process.ppid,
  processExists,
  args: () => process.argv.slice(2),
  cwd: () => process.cwd(),
  exit: (code) => process.exit(code),
  readTextFile: (path) => readFile(path, "utf8"),
  async writeSecretFile(path, text, overwrite = false) {
    await writeFile(path, text, { mode: 0o600, flag: overwrite ? "w" : "wx" });
    // The mode applies only to a file created here: make an overwritten one private too.
    await chmod(path, 0o600);
  },
  env: (name) => process.env[name],
};
