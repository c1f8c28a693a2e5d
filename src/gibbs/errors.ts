/**
 * Typed errors a gibbs request can fail with.
 *
 * @module
 */

/** Base class of every error a {@linkcode Hub} request rejects with. */
export class GibbsError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GibbsError";
  }
}

/**
 * The worker's code threw (Python: raised). `traceback` is the remote stack or traceback text.
 *
 * @example
 * ```ts ignore
 * try {
 *   await hub.request(-1);
 * } catch (error) {
 *   if (error instanceof UserCodeError) console.error(error.traceback);
 * }
 * ```
 */
export class UserCodeError extends GibbsError {
  /** The stack (JS worker) or traceback (Python worker) text sent by the worker. */
  readonly traceback: string;

  /** Creates the error from the worker's traceback text. */
  constructor(traceback: string) {
    super(`Worker code failed: ${summarize(traceback)}`);
    this.name = "UserCodeError";
    this.traceback = traceback;
  }
}

/** No result arrived within the request's timeout, after all its retries. */
export class RequestTimeoutError extends GibbsError {
  /** Creates the error for a timeout in seconds and a number of attempts. */
  constructor(timeout: number, attempts: number) {
    super(`No result within ${timeout} s (${attempts} attempt${attempts === 1 ? "" : "s"})`);
    this.name = "RequestTimeoutError";
  }
}

/**
 * The request was forgotten to make room: more requests were pending than `respBufferSize`.
 * (Python gibbs would leave its caller waiting forever.)
 */
export class RequestEvictedError extends GibbsError {
  /** Creates the error for the buffer size in force. */
  constructor(respBufferSize: number) {
    super(
      `Request evicted: more than respBufferSize=${respBufferSize} requests were pending; ` +
        `raise respBufferSize or send fewer requests at once`,
    );
    this.name = "RequestEvictedError";
  }
}

/** The hub refused a new request because `respBufferSize` requests are already pending. */
export class QueueFullError extends GibbsError {
  /** Creates the error for the limit in force. */
  constructor(limit: number) {
    super(`Queue full: ${limit} requests are already pending`);
    this.name = "QueueFullError";
  }
}

/** The hub was closed while the request was pending, or before it was made. */
export class HubClosedError extends GibbsError {
  /** Creates the error. */
  constructor() {
    super("Hub is closed");
    this.name = "HubClosedError";
  }
}

/** A worker answered with bytes that are not a gibbs response. */
export class WorkerProtocolError extends GibbsError {
  /** Creates the error with what was wrong. */
  constructor(message: string) {
    super(message);
    this.name = "WorkerProtocolError";
  }
}

/** Picks the line that says what went wrong: Python puts it last, JavaScript first. */
function summarize(traceback: string): string {
  const lines = traceback.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  if (lines.length === 0) return "(no traceback)";
  return lines[0].startsWith("Traceback") ? lines[lines.length - 1] : lines[0];
}
