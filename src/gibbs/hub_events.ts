/**
 * Events a hub dispatches for the application that embeds it: workers joining and leaving (with
 * the reason), quarantined, requests re-dispatched, the queue full, peers refused. They are the
 * same happenings the hub logs, under the same dotted names, as typed DOM events on an
 * `EventTarget` (`hub.events`), so that an application can alert, count or react without
 * parsing log lines.
 *
 * @module
 */

/** A worker finished its handshake and may be sent requests. */
export interface WorkerJoinedDetail {
  /** Its routing id as text (32 hex chars for a gibbs worker). */
  worker: string;
  /** Its address. */
  remote?: string;
  /**
   * What it is: `"gibbs-ts"` for one of ours (it announced itself in the handshake), `"gibbs 0.3"`
   * for any other gibbs worker (Python gibbs, or a peer speaking its protocol).
   */
  runtime: string;
  /** Requests it serves at once (1 for a gibbs 0.3 worker). */
  capacity: number;
}

/** A worker's connection ended; what it held was re-sent to others (with re-dispatch on). */
export interface WorkerLeftDetail {
  /** Its routing id as text. */
  worker: string;
  /** Its address. */
  remote?: string;
  /** Why, in words (`"connection closed"` when it simply went away). */
  reason: string;
  /**
   * Why, as a stable code: a ZMTP error code when the hub dropped it (`heartbeat-timeout`,
   * `message-too-large`, ...), `"error"` for a transport failure, `"closed"` otherwise.
   */
  code: string;
}

/** A worker answered with bytes no gibbs worker sends: it gets no more requests. */
export interface WorkerQuarantinedDetail {
  /** Its routing id as text. */
  worker: string;
  /** Its address. */
  remote?: string;
  /** What was wrong. */
  reason: string;
}

/** A request was taken back from a worker and queued for another one. */
export interface RequestRedispatchedDetail {
  /** The request's id. */
  reqId: string;
  /** The worker that lost it. */
  worker?: string;
  /** That worker's address. */
  remote?: string;
  /** Why, in words. */
  reason: string;
}

/** A request was refused, or evicted, because `respBufferSize` requests were pending. */
export interface QueueFullDetail {
  /** The request refused (`"reject-new"`) or evicted (`"evict-oldest"`). */
  reqId: string;
  /** The overflow policy that applied. */
  policy: "reject-new" | "evict-oldest";
  /** The error the request failed with, in words. */
  message: string;
}

/** A connection was refused or dropped before its handshake finished. */
export interface PeerRefusedDetail {
  /** Its address, when known. */
  remote?: string;
  /** A stable code (`bad-signature`, `handshake-timeout`, `too-many-connections`, ...). */
  code: string;
  /** Why, in words. */
  reason: string;
}

/** Each event type with the detail it carries. */
export interface HubEventDetails {
  /** See {@linkcode WorkerJoinedDetail}. */
  "worker.joined": WorkerJoinedDetail;
  /** See {@linkcode WorkerLeftDetail}. */
  "worker.left": WorkerLeftDetail;
  /** See {@linkcode WorkerQuarantinedDetail}. */
  "worker.quarantined": WorkerQuarantinedDetail;
  /** See {@linkcode RequestRedispatchedDetail}. */
  "request.redispatched": RequestRedispatchedDetail;
  /** See {@linkcode QueueFullDetail}. */
  "queue.full": QueueFullDetail;
  /** See {@linkcode PeerRefusedDetail}. */
  "peer.refused": PeerRefusedDetail;
}

/** The name of a hub event. */
export type HubEventType = keyof HubEventDetails;

/** One hub event: its `type` names it, its `detail` says what happened. */
export class HubEvent<K extends HubEventType = HubEventType> extends Event {
  /** Its name. */
  declare readonly type: K;
  /** What happened. */
  readonly detail: HubEventDetails[K];
  /** When, in epoch milliseconds. */
  readonly time: number;

  /** Creates an event of `type` with `detail`. */
  constructor(type: K, detail: HubEventDetails[K], time: number = Date.now()) {
    super(type);
    this.detail = detail;
    this.time = time;
  }
}

/** A past event as the hub keeps it for its dashboard: time, type and detail in one object. */
export type RecentEvent = { [K in HubEventType]: { time: number; type: K } & HubEventDetails[K] }[
  HubEventType
];

/**
 * Options of {@linkcode HubEvents.addEventListener}, as `EventTarget` takes them (declared here:
 * Node's type definitions do not name DOM's `AddEventListenerOptions`).
 */
export interface ListenOptions {
  /** Listen in the capture phase (meaningless on a hub: its events do not propagate). */
  capture?: boolean;
  /** Remove the listener after its first event. */
  once?: boolean;
  /** The listener will not call `preventDefault()`. */
  passive?: boolean;
  /** Removes the listener when aborted. */
  signal?: AbortSignal;
}

/** A listener of any event, as `EventTarget` takes it. */
export type AnyListener = ((event: Event) => void) | { handleEvent(event: Event): void };

/** How many past events {@linkcode HubEvents.recent} keeps. */
export const RECENT_EVENTS = 100;

/** Dispatches a hub event (held by the hub's observer; not part of the public API). */
export const emitHubEvent: unique symbol = Symbol("emitHubEvent");

/**
 * The hub's events, as an `EventTarget`: `hub.events.addEventListener("worker.left", (e) =>
 * e.detail.reason)`. Listeners run synchronously inside the hub's event handling. Unlike a
 * plain `EventTarget`, where a listener that throws is an uncaught error (which ends a Deno or
 * Node process), a listener's error here is logged by the hub (`events.listener`) and the hub
 * goes on: a bug in an alerting hook must not take the hub down.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "./hub.ts";
 * const hub = new Hub({ port: 5019 });
 * hub.events.addEventListener("worker.left", (event) => {
 *   console.log(`worker ${event.detail.worker} left: ${event.detail.reason}`);
 * });
 * hub.events.addEventListener("queue.full", (event) => alertSomeone(event.detail.message));
 * ```
 */
export class HubEvents extends EventTarget {
  #recent: RecentEvent[] = [];
  #next = 0;
  #onError: (error: unknown, type: string) => void;
  /** The guarded wrapper of each listener, per type and capture flag (EventTarget's identity). */
  #wrappers = new WeakMap<object, Map<string, (event: Event) => void>>();

  /**
   * Makes an event target whose listeners' errors go to `onError` (default: standard error).
   */
  constructor(onError?: (error: unknown, type: string) => void) {
    super();
    this.#onError = onError ??
      ((error, type) => console.error(`[gibbs hub] a "${type}" listener threw: ${error}`));
  }

  /** Adds a listener of one hub event type (see {@linkcode HubEventDetails}). */
  override addEventListener<K extends HubEventType>(
    type: K,
    listener: ((event: HubEvent<K>) => void) | { handleEvent(event: HubEvent<K>): void } | null,
    options?: boolean | ListenOptions,
  ): void;
  /** Adds a listener of any event type, as `EventTarget` does. */
  override addEventListener(
    type: string,
    listener: AnyListener | null,
    options?: boolean | ListenOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: AnyListener | null,
    options?: boolean | ListenOptions,
  ): void {
    // Null is allowed (and ignored) by EventTarget; Node's type definitions forbid it.
    if (listener === null) return;
    const key = `${type}|${capture(options)}`;
    let byKey = this.#wrappers.get(listener);
    if (byKey === undefined) this.#wrappers.set(listener, byKey = new Map());
    let wrapper = byKey.get(key);
    if (wrapper === undefined) {
      wrapper = (event: Event) => {
        try {
          if (typeof listener === "function") listener.call(this, event);
          else listener.handleEvent(event);
        } catch (error) {
          try {
            this.#onError(error, event.type);
          } catch {
            // Nowhere left to report it.
          }
        }
      };
      byKey.set(key, wrapper);
    }
    super.addEventListener(type, wrapper, options);
  }

  /** Removes a listener added with {@linkcode HubEvents.addEventListener}. */
  override removeEventListener<K extends HubEventType>(
    type: K,
    listener: ((event: HubEvent<K>) => void) | { handleEvent(event: HubEvent<K>): void } | null,
    options?: boolean | { capture?: boolean },
  ): void;
  /** Removes a listener of any event type, as `EventTarget` does. */
  override removeEventListener(
    type: string,
    listener: AnyListener | null,
    options?: boolean | { capture?: boolean },
  ): void;
  override removeEventListener(
    type: string,
    listener: AnyListener | null,
    options?: boolean | { capture?: boolean },
  ): void {
    if (listener === null) return;
    const wrapper = this.#wrappers.get(listener)?.get(`${type}|${capture(options)}`);
    if (wrapper !== undefined) super.removeEventListener(type, wrapper, options);
  }

  /**
   * The last {@linkcode RECENT_EVENTS} events but `queue.full` (one per refused request under
   * overload: `gibbs_requests_total` counts those), oldest first.
   */
  recent(): RecentEvent[] {
    const ring = this.#recent;
    if (ring.length < RECENT_EVENTS) return ring.slice();
    return [...ring.slice(this.#next), ...ring.slice(0, this.#next)];
  }

  /**
   * Dispatches an event and keeps it among the recent ones.
   *
   * @ignore
   */
  [emitHubEvent]<K extends HubEventType>(type: K, detail: HubEventDetails[K]): void {
    const event = new HubEvent(type, detail);
    if (type !== "queue.full") {
      const kept = { time: event.time, type, ...detail } as RecentEvent;
      if (this.#recent.length < RECENT_EVENTS) this.#recent.push(kept);
      else this.#recent[this.#next] = kept;
      this.#next = (this.#next + 1) % RECENT_EVENTS;
    }
    this.dispatchEvent(event);
  }
}

function capture(options: boolean | { capture?: boolean } | undefined): boolean {
  return typeof options === "boolean" ? options : options?.capture === true;
}
