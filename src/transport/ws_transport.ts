/**
 * `ws://` and `wss://` for the Deno and Node adapters, on their own tcp (and tls) byte streams:
 * a listener that runs the server side of the handshake on each accepted stream, and a dialer
 * that runs the client side. The adapters give the byte streams; everything else is here.
 *
 * @module
 */

import { formatEndpoint, type WebSocketEndpoint } from "./endpoint.ts";
import type {
  ByteStream,
  Listener,
  MessageStream,
  WebSocketDialOptions,
  WebSocketListenOptions,
} from "./runtime_types.ts";
import { acceptWebSocket, openWebSocket } from "./ws_connection.ts";
import { chooseProtocol, originAllowed } from "./ws_handshake.ts";

/** TLS settings of a `wss://` listener: PEM files. */
export interface TlsServerFiles {
  /** The certificate chain. */
  certFile: string;
  /** The private key. */
  keyFile: string;
}

/** TLS settings of a `wss://` client. */
export interface TlsClientOptions {
  /** The name the server's certificate must carry (SNI too). */
  serverName: string;
  /** A PEM file of certificate authorities to trust besides the system's. */
  caFile?: string;
}

/** The byte streams an adapter provides for WebSockets. */
export interface ByteTransport {
  /** Listens on host:port (with TLS when given); resolves with the port bound. */
  listen(
    host: string,
    port: number,
    tls: TlsServerFiles | undefined,
    onStream: (stream: ByteStream) => void,
  ): Promise<{ port: number; close(): Promise<void> }>;
  /** Connects to host:port (with TLS when given). */
  connect(host: string, port: number, tls: TlsClientOptions | undefined): Promise<ByteStream>;
}

/** Listens on a WebSocket endpoint; each upgraded connection becomes a message stream. */
export async function listenWebSocket(
  endpoint: WebSocketEndpoint,
  onStream: (stream: MessageStream) => void,
  options: WebSocketListenOptions,
  bytes: ByteTransport,
): Promise<Listener> {
  let tls: TlsServerFiles | undefined;
  if (endpoint.transport === "wss") {
    if (!options.certFile || !options.keyFile) {
      throw new TypeError(`Binding ${formatEndpoint(endpoint)} needs certFile and keyFile`);
    }
    tls = { certFile: options.certFile, keyFile: options.keyFile };
  }
  const accept = {
    path: endpoint.path,
    protocols: options.protocols,
    chooseProtocol: (offered: string | undefined) => chooseProtocol(offered, options.protocols),
    originAllowed: (origin: string | undefined, host: string) =>
      originAllowed(origin, host, options.origins),
    maxMessageSize: options.maxMessageSize,
    handshakeTimeout: options.handshakeTimeout,
    onRejected: options.onRejected,
  };
  const listener = await bytes.listen(
    endpoint.host,
    endpoint.port,
    tls,
    (stream) => acceptWebSocket(stream, accept, onStream),
  );
  return { endpoint: { ...endpoint, port: listener.port }, close: () => listener.close() };
}

/** Connects to a WebSocket endpoint offering `options.protocols`. */
export async function connectWebSocket(
  endpoint: WebSocketEndpoint,
  options: WebSocketDialOptions,
  bytes: ByteTransport,
): Promise<MessageStream> {
  const tls = endpoint.transport === "wss"
    ? { serverName: endpoint.host, caFile: options.caFile }
    : undefined;
  const stream = await bytes.connect(endpoint.host, endpoint.port, tls);
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  try {
    return await openWebSocket(stream, {
      host: `${host}:${endpoint.port}`,
      path: endpoint.path,
      protocols: options.protocols,
      maxMessageSize: options.maxMessageSize,
      handshakeTimeout: options.handshakeTimeout,
    });
  } catch (error) {
    stream.close();
    throw new Error(
      `Cannot connect to ${formatEndpoint(endpoint)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
