/**
 * The counters a hub reports (`hub.stats()`, `/health`), kept by its dispatcher: one shape for
 * the whole hub and for each service.
 *
 * @module
 */

/** Counters of one service (or, in {@linkcode HubStats}, of all). */
export interface ServiceCounters {
  /** Workers connected. */
  workers: number;
  /** Workers holding at least one request. */
  busy: number;
  /** Requests waiting for a worker. */
  queued: number;
  /** Requests pending in all (waiting or sent). */
  pending: number;
  /** Requests answered by a worker (successes and user-code errors) since start. */
  completed: number;
  /** Requests re-sent because their worker was lost. */
  redispatched: number;
}

/** Counters describing a hub's state, for health checks and monitoring. */
export interface HubStats extends ServiceCounters {
  /** The same counters for each service that has workers or requests. */
  services: Record<string, ServiceCounters>;
}
