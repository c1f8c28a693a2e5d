/**
 * `ws://` and `wss://` for the Deno adapter: `Deno.serve` with `Deno.upgradeWebSocket` to
 * listen, Deno's `WebSocket` client to connect.
 *
 * @module
 */

import { formatEndpoint, type WebSocketEndpoint, webSocketUrl } from "./endpoint.ts";
import type {
  Listener,
  MessageStream,
  WebSocketDialOptions,
  WebSocketListenOptions,
} from "./runtime_types.ts";
import { WebSocketError } from "./ws_errors.ts";
import { chooseProtocol, originAllowed } from "./ws_handshake.ts";
import { type WebSocketLike, WebSocketMessageStream } from "./ws_stream.ts";

function refuse(status: number, text: string): Response {
  return new Response(`${text}\n`, { status, headers: { "content-type": "text/plain" } });
}

/** Listens on a WebSocket endpoint; each upgraded connection becomes a message stream. */
export async function listenWebSocket(
  endpoint: WebSocketEndpoint,
  onStream: (stream: MessageStream) => void,
  options: WebSocketListenOptions,
): Promise<Listener> {
  const tls = endpoint.transport === "wss";
  if (tls && (!options.certFile || !options.keyFile)) {
    throw new TypeError(`Binding ${formatEndpoint(endpoint)} needs certFile and keyFile`);
  }
  const abort = new AbortController();
  const { promise: listening, resolve, reject } = Promise.withResolvers<number>();
  const handler = (request: Request, info: Deno.ServeHandlerInfo): Response => {
    const addr = info.remoteAddr as Deno.NetAddr;
    const remote = `${addr.hostname}:${addr.port}`;
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return refuse(426, "This is a ZeroMQ WebSocket endpoint (ZWS 2.0): connect with WebSocket");
    }
    const path = new URL(request.url).pathname;
    if (path !== endpoint.path) {
      options.onRejected(remote, "unknown-path", `no WebSocket endpoint at ${path}`);
      return refuse(404, `No endpoint at ${path}`);
    }
    const origin = request.headers.get("origin");
    if (!originAllowed(origin, request.headers.get("host"), options.origins)) {
      options.onRejected(remote, "origin-not-allowed", `origin ${origin} is not allowed`);
      return refuse(403, `Origin ${origin} is not allowed`);
    }
    const offered = request.headers.get("sec-websocket-protocol");
    const protocol = chooseProtocol(offered, options.protocols);
    if (protocol === null) {
      const reason = `offered subprotocols "${offered ?? ""}", expected one of ${
        options.protocols.join(", ")
      }`;
      options.onRejected(remote, "unknown-subprotocol", reason);
      return refuse(400, `Unsupported WebSocket subprotocol: ${reason}`);
    }
    // Deno checks `protocol` against the offer split on ", ", which a libzmq client's
    // "ZWS2.0/NULL,ZWS2.0" (no space) does not match: the header is set on the answer instead.
    // Deno pings the client and drops it when it stays silent past idleTimeout (30 s).
    const { socket, response } = Deno.upgradeWebSocket(request);
    response.headers.set("sec-websocket-protocol", protocol);
    socket.onopen = () => {
      onStream(new WebSocketMessageStream(socket as unknown as WebSocketLike, remote, protocol));
    };
    return response;
  };
  const common = {
    hostname: endpoint.host,
    port: endpoint.port,
    signal: abort.signal,
    onListen: (addr: Deno.NetAddr) => resolve(addr.port),
    onError: (error: unknown) => {
      console.warn(`[gibbs] WebSocket upgrade on ${formatEndpoint(endpoint)} failed: ${error}`);
      return new Response("Internal Server Error", { status: 500 });
    },
  };
  // Deno.serve throws at once when it cannot bind (the port in use).
  const server = tls
    ? Deno.serve({
      ...common,
      cert: Deno.readTextFileSync(options.certFile!),
      key: Deno.readTextFileSync(options.keyFile!),
    }, handler)
    : Deno.serve(common, handler);
  // A failed bind after the call (e.g. the port in use) rejects `finished`, not the call.
  server.finished.catch((error) => reject(error));
  const port = await listening;
  return {
    endpoint: { ...endpoint, port },
    async close() {
      abort.abort();
      // The listening socket is closed once the abort is processed; upgraded connections stay.
      await new Promise((resolve) => setTimeout(resolve, 0));
    },
  };
}

/** Connects to a WebSocket endpoint offering `options.protocols`. */
export function connectWebSocket(
  endpoint: WebSocketEndpoint,
  options: WebSocketDialOptions,
): Promise<MessageStream> {
  const url = webSocketUrl(endpoint);
  const client = options.caFile
    ? Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(options.caFile)] })
    : undefined;
  const socket = new WebSocket(url, { protocols: [...options.protocols], client });
  socket.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    socket.onopen = () => {
      const protocol = socket.protocol;
      if (!options.protocols.includes(protocol)) {
        socket.close();
        client?.close();
        reject(
          new WebSocketError(
            "unknown-subprotocol",
            `${url} answered with subprotocol "${protocol}", not one of ours`,
          ),
        );
        return;
      }
      const remote = `${endpoint.host}:${endpoint.port}`;
      const stream = new WebSocketMessageStream(
        socket as unknown as WebSocketLike,
        remote,
        protocol,
      );
      if (client) {
        const end = socket.onclose;
        socket.onclose = (event) => {
          client.close();
          end?.call(socket, event);
        };
      }
      resolve(stream);
    };
    socket.onerror = (event) => {
      client?.close();
      const message = (event as ErrorEvent).message;
      reject(new Error(`Cannot connect to ${url}${message ? `: ${message}` : ""}`));
    };
  });
}
