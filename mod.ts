/**
 * gibbs for Deno and Node: scale a model (or any code) across processes and machines, over our
 * own implementation of the ZeroMQ wire protocol (ZMTP 3.1), wire-compatible with Python gibbs.
 *
 * An application embeds a {@linkcode Hub}; {@linkcode Worker}s in other processes or machines
 * connect to it; `await hub.request(x)` runs on whichever worker is idle.
 *
 * @example
 * ```ts ignore
 * import { Hub, Worker } from "./mod.ts";
 * // in the worker process:
 * await new Worker((x: number) => x * 2, { port: 5019 }).run();
 * // in the application:
 * const hub = new Hub({ port: 5019 });
 * console.log(await hub.request(21)); // 42
 * ```
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

export { Hub, type HubOptions, type RequestOptions, ServiceClient } from "./src/gibbs/hub.ts";
export type { HubStats, ServiceCounters } from "./src/gibbs/stats.ts";
export { ResponseStream } from "./src/gibbs/response_stream.ts";
export { type BatchOptions, Worker, type WorkerOptions } from "./src/gibbs/worker.ts";
export {
  batched,
  type Handler,
  type HandlerClass,
  type HandlerFunction,
} from "./src/gibbs/handler.ts";
export { type RequestContext, requestContext, requestSignal } from "./src/gibbs/context.ts";
export { HandlerModuleError, type HandlerModuleReason } from "./src/gibbs/handler_module.ts";
export { HandlerStartError } from "./src/gibbs/executor.ts";
export { spawnWorkers, type SpawnWorkersOptions, type WorkerProcesses } from "./src/gibbs/spawn.ts";
export {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  UserCodeError,
  WorkerProtocolError,
} from "./src/gibbs/errors.ts";
export type { Kwargs } from "./src/gibbs/codec.ts";
export {
  type AnyListener,
  HubEvent,
  type HubEventDetails,
  HubEvents,
  type HubEventType,
  type ListenOptions,
  type PeerRefusedDetail,
  type QueueFullDetail,
  type RecentEvent,
  type RequestRedispatchedDetail,
  type WorkerJoinedDetail,
  type WorkerLeftDetail,
  type WorkerQuarantinedDetail,
} from "./src/gibbs/hub_events.ts";
export type {
  HistogramSnapshot,
  HubStatus,
  MetricsSnapshot,
  ServiceSnapshot,
  WorkerRow,
} from "./src/gibbs/hub_observer.ts";
export {
  type HistorySeries,
  type OutcomeLabel,
  OUTCOMES,
  type WindowSummary,
} from "./src/gibbs/metrics.ts";
export { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "./src/gibbs/prometheus.ts";
export {
  createLogger,
  type CreateLoggerOptions,
  type LogFormat,
  type Logger,
  type LoggerOption,
  type LogLevel,
  type LogRecord,
} from "./src/gibbs/logger.ts";

export { Dealer } from "./src/socket/dealer.ts";
export { Router, type RouterOptions } from "./src/socket/router.ts";
export type { Frame, Message, SocketBase } from "./src/socket/socket_base.ts";
export type {
  ChildProcess,
  WebSocketBindOptions,
  WebSocketConnectOptions,
} from "./src/transport/runtime_types.ts";
export { WebSocketError, type WebSocketErrorCode } from "./src/transport/ws_errors.ts";
export type {
  AuthDecision,
  Authenticator,
  AuthOutcome,
  AuthRequest,
  FrameBox,
  Mechanism,
  MechanismContext,
  MechanismFactory,
  MechanismStep,
  PeerGreeting,
} from "./src/zmtp/mechanism.ts";
export {
  allowCurveKeys,
  type AuthorizedKey,
  type CurveKeyPair,
  curveKeyPair,
  curvePublicKey,
  formatSecretKeyFile,
  parseAuthorizedKeys,
  parseSecretKeyFile,
  type SecurityOptions,
} from "./src/socket/security.ts";
export { z85Decode, z85Encode } from "./src/zmtp/z85.ts";
export type {
  SocketEvent,
  SocketEventType,
  SocketOptions,
  TrySendOptions,
} from "./src/socket/options.ts";
export {
  EndpointError,
  HostUnreachableError,
  SocketClosedError,
  SocketError,
  type SocketErrorCode,
  TimeoutError,
} from "./src/socket/errors.ts";
export { ZmtpError, type ZmtpErrorCode } from "./src/zmtp/errors.ts";
export { TransportError, type TransportErrorCode } from "./src/transport/errors.ts";

if (import.meta.main) {
  // Not awaited: a model served with `mod.ts worker` may import this module itself, and an
  // import of a module still evaluating (awaiting the CLI) would wait forever.
  import("./src/cli/main.ts").then(({ main }) => main());
}
