/**
 * gibbs for Deno and Node: scale a model (or any code) across processes and machines, over our
 * own implementation of the ZeroMQ wire protocol (ZMTP 3.1), wire-compatible with Python gibbs.
 *
 * The socket layer ({@linkcode Dealer}, {@linkcode Router}) is shaped like zeromq.js v6.
 *
 * @example
 * ```ts ignore
 * import { Dealer, Router } from "./mod.ts";
 * const router = new Router();
 * const endpoint = await router.bind("tcp://127.0.0.1:0");
 * const dealer = new Dealer();
 * dealer.connect(endpoint);
 * await dealer.send("hello");
 * const [id, hello] = await router.receive();
 * ```
 *
 * @module
 */

export { Dealer } from "./src/socket/dealer.ts";
export { Router, type RouterOptions } from "./src/socket/router.ts";
export type { Frame, Message } from "./src/socket/socket_base.ts";
export type { SocketEvent, SocketOptions } from "./src/socket/options.ts";
export {
  HostUnreachableError,
  SocketClosedError,
  SocketError,
  type SocketErrorCode,
  TimeoutError,
} from "./src/socket/errors.ts";
export { ZmtpError, type ZmtpErrorCode } from "./src/zmtp/errors.ts";
export { EndpointError } from "./src/transport/endpoint.ts";

if (import.meta.main) {
  const { main } = await import("./src/cli/main.ts");
  await main();
}
