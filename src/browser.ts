/**
 * The browser build's entry: a gibbs {@linkcode Worker} (and the socket layer under it) that
 * runs in a web page and joins a hub's pool over WebSocket. Bundled with esbuild into one ES
 * module, `gibbs.js`, that a hub's HTTP gateway serves at `/gibbs.js` and the npm package ships
 * as `gibbs-zmq/browser`.
 *
 * @example
 * ```ts ignore
 * // In a page: <script type="module">
 * import { Worker } from "http://hub.example:8080/gibbs.js";
 * const worker = new Worker((text: string) => text.length, {
 *   endpoint: "ws://hub.example:5020",
 * });
 * await worker.run(); // serves until worker.stop() or the page closes
 * ```
 *
 * @module
 */

export { Worker, type WorkerOptions } from "./gibbs/worker.ts";
export type { Handler, HandlerClass, HandlerFunction } from "./gibbs/handler.ts";
export type { Kwargs } from "./gibbs/codec.ts";
export { Dealer } from "./socket/dealer.ts";
export { Router, type RouterOptions } from "./socket/router.ts";
export type { SocketEvent, SocketOptions } from "./socket/options.ts";
export {
  HostUnreachableError,
  SocketClosedError,
  SocketError,
  TimeoutError,
} from "./socket/errors.ts";
export { ZmtpError } from "./zmtp/errors.ts";
export { WebSocketError } from "./transport/ws_errors.ts";
