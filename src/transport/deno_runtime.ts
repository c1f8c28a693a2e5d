/**
 * The Deno adapter: the only file of the library that calls `Deno.*`. `ws://` and `wss://` run
 * over its tcp and tls streams (`ws_transport.ts`).
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { setImmediate } from "node:timers";
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

class DenoStream implements ByteStream {
  readonly kind = "bytes" as const;
  readonly remote: string;
  #conn: Deno.Conn;
  #paused = false;
  #resume: (() => void) | null = null;
  #closed = false;

  constructor(conn: Deno.Conn, remote: string) {
    this.#conn = conn;
    this.remote = remote;
  }

  start(
    onData: (chunk: Uint8Array) => void,
    onEnd: (error?: Error) => void,
    readTarget?: () => Uint8Array | null,
  ): void {
    this.#readLoop(onData, readTarget).then(() => onEnd(), (error) => onEnd(error));
  }

  async #readLoop(
    onData: (chunk: Uint8Array) => void,
    readTarget?: () => Uint8Array | null,
  ): Promise<void> {
    const reads = new ReadBuffer();
    while (true) {
      if (this.#paused) await new Promise<void>((resolve) => (this.#resume = resolve));
      const buffer = reads.next(readTarget?.());
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch (error) {
        // Our own close() interrupts the pending read: that is an orderly end.
        if (this.#closed) return;
        throw error;
      }
      if (n === null) return;
      // A view made directly: about half what subarray() costs (which looks up a species).
      onData(new Uint8Array(buffer.buffer, buffer.byteOffset, n));
      reads.filled(buffer, n);
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    const resume = this.#resume;
    this.#resume = null;
    resume?.();
  }

  /** Writes the chunks; resolves once the system took them. */
  write(chunks: Uint8Array[]): Promise<void> {
    // The usual case, one chunk the system takes whole, costs one promise of ours and no
    // closure (the chunk waits in a field; a second write meanwhile takes the general path).
    if (chunks.length !== 1 || this.#writing !== null) return this.#writeAll(chunks);
    const first = this.#writing = chunks[0];
    return this.#conn.write(first).then(this.#wrote, this.#writeFailed);
  }

  #writing: Uint8Array | null = null;

  readonly #wrote = (n: number): Promise<void> | undefined => {
    const chunk = this.#writing!;
    this.#writing = null;
    if (n !== chunk.length) return this.#writeAll([chunk.subarray(n)]);
  };

  readonly #writeFailed = (error: unknown): never => {
    this.#writing = null;
    throw error;
  };

  async #writeAll(chunks: Uint8Array[]): Promise<void> {
    for (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) at += await this.#conn.write(chunk.subarray(at));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side's reset.
    }
    this.resume();
  }
}

function wrap(conn: Deno.Conn): DenoStream {
  const addr = conn.remoteAddr;
  const remote = addr.transport === "tcp" || addr.transport === "udp"
    ? `${addr.hostname}:${addr.port}`
    : `unix:${(addr as Deno.UnixAddr).path || "peer"}`;
  // TLS connections have no setNoDelay of their own (Deno sets it on the socket under them).
  const tcp = conn as Partial<Deno.TcpConn>;
  if (addr.transport === "tcp" && typeof tcp.setNoDelay === "function") tcp.setNoDelay(true);
  return new DenoStream(conn, remote);
}

function listen(
  endpoint: Endpoint,
  onStream: (s: Stream) => void,
  onError?: (error: TransportError) => void,
  ws?: WebSocketListenOptions,
): Promise<Listener> {
  if (endpoint.transport === "ws" || endpoint.transport === "wss") {
    if (!ws) throw new TypeError(`Listening on ${formatEndpoint(endpoint)} needs ws options`);
    return listenWebSocket(endpoint, onStream, ws, bytes(onError));
  }
  let listener: Deno.Listener;
  let bound: Endpoint;
  try {
    if (endpoint.transport === "tcp") {
      listener = Deno.listen({ hostname: endpoint.host, port: endpoint.port, transport: "tcp" });
      bound = { ...endpoint, port: (listener.addr as Deno.NetAddr).port };
    } else {
      removeStaleSocket(endpoint.path);
      listener = Deno.listen({ path: endpoint.path, transport: "unix" });
      bound = endpoint;
    }
  } catch (error) {
    return Promise.reject(transportError(error, `Cannot bind ${formatEndpoint(endpoint)}`));
  }
  const closeListener = acceptAll(listener, formatEndpoint(bound), onStream, onError, () => {
    if (endpoint.transport === "ipc") removeStaleSocket(endpoint.path);
  });
  if (bound.transport !== "tcp") return Promise.resolve({ endpoint: bound, close: closeListener });
  const { host, port } = bound;
  const close = async () => {
    await closeListener();
    await waitPortReleased(() => Promise.resolve(tcpPortFree(host, port)));
  };
  return Promise.resolve({ endpoint: bound, close });
}

/** True if `host:port` can be bound now (bound and closed at once to find out). */
function tcpPortFree(host: string, port: number): boolean {
  try {
    Deno.listen({ hostname: host, port, transport: "tcp" }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    return true; // another failure is not ours to wait for: the next bind reports it
  }
}

/**
 * Accepts connections until closed; returns the closer, which resolves once the address is
 * free (the pending accept cancelled).
 */
function acceptAll(
  listener: Deno.Listener,
  name: string,
  onStream: (s: ByteStream) => void,
  onError: ((error: TransportError) => void) | undefined,
  onClose: () => void = () => {},
): () => Promise<void> {
  let closed = false;
  const loop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        // A failed accept (e.g. out of file descriptors) must not end the accept loop.
        onError?.(transportError(error, `Cannot accept on ${name}`));
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      onStream(wrap(conn));
    }
  })();
  return async () => {
    if (!closed) {
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      onClose();
    }
    // The port is free only once the pending accept has been cancelled.
    await loop;
  };
}

/** The tcp and tls streams the WebSocket transport runs on. */
function bytes(onError?: (error: TransportError) => void): ByteTransport {
  return {
    listen(host: string, port: number, tls: TlsServerFiles | undefined, onStream) {
      const name = `${tls ? "wss" : "ws"}://${host}:${port}`;
      let listener: Deno.Listener;
      try {
        listener = tls
          ? Deno.listenTls({
            hostname: host,
            port,
            cert: Deno.readTextFileSync(tls.certFile),
            key: Deno.readTextFileSync(tls.keyFile),
          })
          : Deno.listen({ hostname: host, port, transport: "tcp" });
      } catch (error) {
        return Promise.reject(transportError(error, `Cannot bind ${name}`));
      }
      return Promise.resolve({
        port: (listener.addr as Deno.NetAddr).port,
        close: acceptAll(listener, name, onStream, onError),
      });
    },
    async connect(host: string, port: number, tls: TlsClientOptions | undefined) {
      let conn: Deno.Conn;
      try {
        conn = tls
          ? await Deno.connectTls({
            hostname: tls.serverName,
            port,
            caCerts: tls.caFile ? [Deno.readTextFileSync(tls.caFile)] : undefined,
          })
          : await Deno.connect({ hostname: host, port, transport: "tcp" });
      } catch (error) {
        throw transportError(error, `Cannot connect to ${tls ? "wss" : "ws"}://${host}:${port}`);
      }
      return wrap(conn);
    },
  };
}

/** libzmq unlinks a leftover socket file before binding an ipc endpoint; so do we. */
function removeStaleSocket(path: string): void {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch {
    // nothing there
  }
}

async function connect(endpoint: Endpoint, ws?: WebSocketDialOptions): Promise<Stream> {
  if (endpoint.transport === "ws" || endpoint.transport === "wss") {
    if (!ws) throw new TypeError(`Connecting to ${formatEndpoint(endpoint)} needs ws options`);
    return connectWebSocket(endpoint, ws, bytes());
  }
  let conn: Deno.Conn;
  try {
    conn = endpoint.transport === "tcp"
      ? await Deno.connect({ hostname: endpoint.host, port: endpoint.port, transport: "tcp" })
      : await Deno.connect({ path: endpoint.path, transport: "unix" });
  } catch (error) {
    throw transportError(error, `Cannot connect to ${formatEndpoint(endpoint)}`);
  }
  return wrap(conn);
}

function spawnScript(script: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const stdio = options.stdio ?? "inherit";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: options.env,
    stdin: "null",
    stdout: stdio === "inherit" ? "inherit" : "null",
    stderr: stdio === "inherit" ? "inherit" : "null",
  }).spawn();
  return {
    pid: child.pid,
    kill(signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    exited: child.status.then((s) => ({ code: s.signal ? null : s.code, signal: s.signal })),
  };
}

async function serveHttp(host: string, port: number, handler: HttpHandler): Promise<HttpServer> {
  const { promise, resolve } = Promise.withResolvers<number>();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve(
      { hostname: host, port, onListen: (addr) => resolve(addr.port) },
      handler,
    );
  } catch (error) {
    throw transportError(error, `Cannot serve HTTP on ${host}:${port}`);
  }
  const bound = await promise;
  return { port: bound, close: () => server.shutdown() };
}

function startThread(url: URL): Thread {
  const worker = new Worker(url.href, { type: "module" });
  let onError: ((error: Error) => void) | undefined;
  worker.onerror = (event) => {
    // Handled here: an error in the thread must not end the whole process.
    event.preventDefault();
    onError?.(new Error(event.message || "thread failed"));
  };
  worker.onmessageerror = () => onError?.(new Error("a thread message could not be read"));
  return {
    post: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage(handler) {
      worker.onmessage = (event) => handler(event.data);
    },
    onError(handler) {
      onError = handler;
    },
    terminate() {
      worker.terminate();
      return Promise.resolve();
    },
  };
}

interface WorkerScope {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

function parentPort(): ThreadPort | null {
  const scope = globalThis as unknown as { WorkerGlobalScope?: unknown } & WorkerScope;
  if (typeof scope.WorkerGlobalScope === "undefined") return null;
  return {
    post: (message, transfer) => scope.postMessage(message, transfer ?? []),
    onMessage(handler) {
      scope.onmessage = (event) => handler(event.data);
    },
  };
}

/** Exit handlers, run by one `unload` listener (Deno fires it on Deno.exit and a normal end). */
const onExit = exitHandlers(
  (run) => globalThis.addEventListener("unload", run),
  (run) => globalThis.removeEventListener("unload", run),
);

function processExists(pid: number): boolean {
  try {
    // Signal 0 checks that the process exists without signalling it; Deno's types omit it.
    Deno.kill(pid, 0 as unknown as Deno.Signal);
    return true;
  } catch (error) {
    // Not ours to signal, but there.
    return error instanceof Deno.errors.PermissionDenied;
  }
}

/** The Deno runtime adapter. */
export const denoRuntime: Runtime = {
  name: "deno",
  listen,
  connect,
  now: () => performance.now(),
  every(ms, fn) {
    const id = setInterval(fn, ms);
    Deno.unrefTimer(id);
    return () => clearInterval(id);
  },
  afterTurn: turnQueue(setImmediate),
  onShutdownSignal(handler) {
    const onInt = () => handler("SIGINT");
    const onTerm = () => handler("SIGTERM");
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    return () => {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
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
  pid: () => Deno.pid,
  ppid: () => Deno.ppid,
  processExists,
  args: () => Deno.args,
  cwd: () => Deno.cwd(),
  exit: (code) => Deno.exit(code),
  readTextFile: (path) => Deno.readTextFile(path),
  async writeSecretFile(path, text, overwrite = false) {
    await Deno.writeTextFile(path, text, { mode: 0o600, createNew: !overwrite });
    // The mode applies only to a file created here: make an overwritten one private too.
    await Deno.chmod(path, 0o600);
  },
  env: (name) => Deno.env.get(name),
};
