/**
 * The Deno adapter: the only file of the library that calls `Deno.*`. `ws://` and `wss://` run
 * over its tcp and tls streams (`ws_transport.ts`).
 *
 * @module
 */

import { type Endpoint, formatEndpoint } from "./endpoint.ts";
import { ReadBuffer } from "./read_buffer.ts";
import type {
  ByteStream,
  ChildProcess,
  HttpHandler,
  HttpServer,
  Listener,
  Runtime,
  SpawnOptions,
  Stream,
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
      onData(buffer.subarray(0, n));
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

  async write(chunks: Uint8Array[]): Promise<void> {
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
  ws?: WebSocketListenOptions,
): Promise<Listener> {
  if (endpoint.transport === "ws" || endpoint.transport === "wss") {
    if (!ws) throw new TypeError(`Listening on ${formatEndpoint(endpoint)} needs ws options`);
    return listenWebSocket(endpoint, onStream, ws, bytes);
  }
  let listener: Deno.Listener;
  let bound: Endpoint;
  if (endpoint.transport === "tcp") {
    listener = Deno.listen({ hostname: endpoint.host, port: endpoint.port, transport: "tcp" });
    bound = { ...endpoint, port: (listener.addr as Deno.NetAddr).port };
  } else {
    removeStaleSocket(endpoint.path);
    listener = Deno.listen({ path: endpoint.path, transport: "unix" });
    bound = endpoint;
  }
  const close = acceptAll(listener, formatEndpoint(bound), onStream, () => {
    if (endpoint.transport === "ipc") removeStaleSocket(endpoint.path);
  });
  return Promise.resolve({ endpoint: bound, close });
}

/**
 * Accepts connections until closed; returns the closer, which resolves once the address is
 * free (the pending accept cancelled).
 */
function acceptAll(
  listener: Deno.Listener,
  name: string,
  onStream: (s: ByteStream) => void,
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
        console.warn(`[gibbs] accept on ${name} failed: ${error}`);
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
    await loop;
  };
}

/** The tcp and tls streams the WebSocket transport runs on. */
const bytes: ByteTransport = {
  listen(host: string, port: number, tls: TlsServerFiles | undefined, onStream) {
    const listener = tls
      ? Deno.listenTls({
        hostname: host,
        port,
        cert: Deno.readTextFileSync(tls.certFile),
        key: Deno.readTextFileSync(tls.keyFile),
      })
      : Deno.listen({ hostname: host, port, transport: "tcp" });
    const name = `${tls ? "wss" : "ws"}://${host}:${port}`;
    return Promise.resolve({
      port: (listener.addr as Deno.NetAddr).port,
      close: acceptAll(listener, name, onStream),
    });
  },
  async connect(host: string, port: number, tls: TlsClientOptions | undefined) {
    const conn = tls
      ? await Deno.connectTls({
        hostname: tls.serverName,
        port,
        caCerts: tls.caFile ? [Deno.readTextFileSync(tls.caFile)] : undefined,
      })
      : await Deno.connect({ hostname: host, port, transport: "tcp" });
    return wrap(conn);
  },
};

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
    return connectWebSocket(endpoint, ws, bytes);
  }
  const conn = endpoint.transport === "tcp"
    ? await Deno.connect({ hostname: endpoint.host, port: endpoint.port, transport: "tcp" })
    : await Deno.connect({ path: endpoint.path, transport: "unix" });
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
  const server = Deno.serve(
    { hostname: host, port, onListen: (addr) => resolve(addr.port) },
    handler,
  );
  const bound = await promise;
  return { port: bound, close: () => server.shutdown() };
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
  spawnScript,
  serveHttp,
  args: () => Deno.args,
  cwd: () => Deno.cwd(),
  exit: (code) => Deno.exit(code),
};
