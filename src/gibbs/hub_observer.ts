/**
 * What the hub sees, turned into figures and events: the hub hands its observer each request
 * that ends, each dispatcher log record, each socket event and, once per heartbeat, its queue
 * depth; the observer keeps the {@linkcode ServiceMetrics}, the {@linkcode History} and the
 * {@linkcode HubEvents}, and builds the snapshots behind `hub.metrics()`, `hub.status()`,
 * `/metrics` and the dashboard. No I/O: the clock is passed in.
 *
 * @module
 */

import type { SocketEvent } from "../socket/options.ts";
import type { Outcome, WorkerState } from "./dispatcher.ts";
import type { HubStats } from "./stats.ts";
import { DEFAULT_SERVICE } from "./extension.ts";
import { isExtendedPeer, readCapacity } from "./extension.ts";
import { emitHubEvent, HubEvents, type RecentEvent } from "./hub_events.ts";
import {
  type Histogram,
  History,
  type HistorySeries,
  type OutcomeLabel,
  outcomeOf,
  OUTCOMES,
  recordRequest,
  type RequestTimes,
  ServiceMetrics,
} from "./metrics.ts";

/** Most services figures are kept for: names come from workers and callers, and must not pile up. */
const MAX_SERVICES = 256;

const O_EVICTED = OUTCOMES.indexOf("evicted");
const O_REJECTED = OUTCOMES.indexOf("rejected");

/** A histogram as read: cumulative counts per upper bound, in milliseconds. */
export interface HistogramSnapshot {
  /** Upper bounds of the finite buckets, ms. */
  bucketsMs: number[];
  /** Cumulative counts, one per bound and a last one for `+Inf` (equal to `count`). */
  cumulative: number[];
  /** Sum of the observations, ms. */
  sumMs: number;
  /** Number of observations. */
  count: number;
}

/** The figures of one service. */
export interface ServiceSnapshot {
  /** Its name. */
  service: string;
  /** Requests ended since the hub started, by outcome (see {@linkcode OUTCOMES}). */
  requests: Record<OutcomeLabel, number>;
  /** Time from a request's creation to the send that was answered. */
  queueWait: HistogramSnapshot;
  /** Time from the last send to the answer (ok and user errors). */
  serviceTime: HistogramSnapshot;
  /** Time from a request's creation to its end (every request). */
  latency: HistogramSnapshot;
  /** Workers connected. */
  workers: number;
  /** Workers holding at least one request. */
  busy: number;
  /** Requests waiting for a worker. */
  queued: number;
  /** Requests pending in all (waiting or sent). */
  pending: number;
  /** Requests re-sent because their worker was lost or broke the protocol. */
  redispatched: number;
}

/** Every figure of a hub at one moment; `formatPrometheus` writes it as `/metrics`. */
export interface MetricsSnapshot {
  /** When the hub started, epoch ms. */
  startedAt: number;
  /** Seconds since then. */
  uptimeSeconds: number;
  /** Per service (one, `"default"`, until named services exist). */
  services: ServiceSnapshot[];
  /** Workers connected. */
  workers: number;
  /** Workers holding at least one request. */
  busy: number;
  /** Workers that answered garbage and get no more requests on their connection. */
  quarantined: number;
  /** Bytes read from worker connections (ZMTP framing, handshakes and heartbeats included). */
  bytesReceived: number;
  /** Bytes written to worker connections (the same). */
  bytesSent: number;
  /** Connections accepted. */
  connectionsAccepted: number;
  /** Connections refused before their handshake, by code (`too-many-connections`). */
  connectionsRefused: Record<string, number>;
  /** Handshakes that failed, by code (`bad-signature`, `handshake-timeout`, ...). */
  handshakeFailures: Record<string, number>;
  /** Workers that left, by code (`closed`, `heartbeat-timeout`, `error`, ...). */
  workersLeft: Record<string, number>;
  /** Workers quarantined. */
  quarantines: number;
  /** Answers from a worker for a request never sent to it. */
  unexpectedResponses: number;
}

/** A worker as the dashboard and `gibbs status` show it. */
export interface WorkerRow {
  /** Routing id as text. */
  id: string;
  /** Its address. */
  address: string | null;
  /** `"gibbs-ts"` (ours) or `"gibbs 0.3"` (any other gibbs worker). */
  runtime: string;
  /** The service it serves. */
  service: string;
  /** Requests it serves at once. */
  capacity: number;
  /** Requests it holds now. */
  held: number;
  /** Requests it answered. */
  served: number;
  /** Moving average of its time per request, ms (null before its first answer). */
  meanMs: number | null;
  /** Ms since it was last heard from (null: not yet). */
  lastHeardMs: number | null;
  /** Seconds since it joined. */
  connectedSeconds: number;
  /** It answered garbage and gets no more requests. */
  quarantined: boolean;
}

/** What the dashboard and `gibbs status` show: figures, workers, history and recent events. */
export interface HubStatus {
  /** When this was taken, epoch ms. */
  time: number;
  /** The endpoint workers connect to. */
  endpoint: string | null;
  /** The figures. */
  metrics: MetricsSnapshot;
  /** Workers connected (at most the limit asked for), by id. */
  workers: WorkerRow[];
  /** Workers connected in all. */
  workersTotal: number;
  /** Per-second figures of the last minutes. */
  history: HistorySeries;
  /** Recent events (joins, leaves, drops, quarantines, re-dispatches), oldest first. */
  events: RecentEvent[];
}

/** Bytes through the hub's socket. */
export interface Traffic {
  /** Bytes read. */
  bytesReceived: number;
  /** Bytes written. */
  bytesSent: number;
}

/** Settings of a {@linkcode HubObserver}. */
export interface HubObserverOptions {
  /** Count requests (the only per-request work); events are dispatched either way. */
  metrics: boolean;
  /** The hub's clock, ms. */
  now: () => number;
  /** The overflow policy, for `queue.full` events. */
  overflow: "evict-oldest" | "reject-new";
  /** Where an event listener's error goes. */
  onListenerError?: (error: unknown, type: string) => void;
}

/** A request as the observer is given it. */
interface EndedRequest extends RequestTimes {
  readonly reqId: string;
  readonly service: string;
}

/**
 * The hub's figures and events (see the module documentation).
 *
 * @ignore
 */
export class HubObserver {
  /** The hub's events. */
  readonly events: HubEvents;
  #metrics: boolean;
  #now: () => number;
  #overflow: "evict-oldest" | "reject-new";
  #services = new Map<string, ServiceMetrics>([[
    DEFAULT_SERVICE,
    new ServiceMetrics(DEFAULT_SERVICE),
  ]]);
  #history = new History();
  #startedAt = Date.now();
  #startedNow: number;
  #accepted = 0;
  #refused = new Map<string, number>();
  #handshakeFailures = new Map<string, number>();
  #left = new Map<string, number>();
  #quarantines = 0;
  #unexpected = 0;
  #joinedAt = new Map<string, number>();

  /** Makes an observer with nothing counted yet. */
  constructor(options: HubObserverOptions) {
    this.events = new HubEvents(options.onListenerError);
    this.#metrics = options.metrics;
    this.#now = options.now;
    this.#overflow = options.overflow;
    this.#startedNow = options.now();
  }

  /** Whether requests are counted. */
  get counting(): boolean {
    return this.#metrics;
  }

  set counting(on: boolean) {
    this.#metrics = on;
  }

  /** A request ended (called from the dispatcher's `settle`). No allocation on success. */
  settled(request: EndedRequest, outcome: Outcome): void {
    const o = outcome.ok ? 0 : outcomeOf(outcome.error);
    if (this.#metrics) {
      recordRequest(this.#figures(request.service), this.#history, request, o, this.#now());
    }
    if (o === O_REJECTED || o === O_EVICTED) {
      this.events[emitHubEvent]("queue.full", {
        reqId: request.reqId,
        policy: o === O_REJECTED ? "reject-new" : "evict-oldest",
        message: (outcome as { error: Error }).error.message,
      });
    }
  }

  /** A dispatcher log record: re-dispatches, quarantines, unexpected answers. */
  logged(event: string, message: string, fields: object | undefined): void {
    const f = (fields ?? {}) as Record<string, string | undefined>;
    switch (event) {
      case "request.redispatched":
        this.events[emitHubEvent]("request.redispatched", {
          reqId: f.reqId ?? "",
          worker: unquote(f.worker),
          remote: f.peer,
          reason: message.replace(/^re-sending request \S+: /, ""),
        });
        break;
      case "worker.quarantined":
        this.#quarantines++;
        this.events[emitHubEvent]("worker.quarantined", {
          worker: unquote(f.worker) ?? "",
          remote: f.peer,
          reason: f.reason ?? message,
        });
        break;
      case "response.unexpected":
        this.#unexpected++;
        break;
    }
  }

  /** A socket event, after the hub acted on it. */
  socketEvent(event: SocketEvent): void {
    switch (event.type) {
      case "accept":
        this.#accepted++;
        break;
      case "accept:error":
        if (event.code === undefined) break; // the listener failed, no peer was refused
        bump(this.#refused, event.code);
        this.#peerRefused(event, event.code);
        break;
      case "handshake:error:protocol":
      case "handshake:error:auth":
      case "handshake:error:other": {
        const code = event.code ?? event.type.slice("handshake:error:".length);
        bump(this.#handshakeFailures, code);
        this.#peerRefused(event, code);
        break;
      }
      case "handshake":
        if (event.routingId) {
          const worker = workerLabel(event.routingId);
          this.#joinedAt.set(worker, this.#now());
          const ours = isExtendedPeer(event.properties);
          this.events[emitHubEvent]("worker.joined", {
            worker,
            remote: event.remote,
            runtime: ours ? "gibbs-ts" : "gibbs 0.3",
            capacity: ours ? readCapacity(event.properties) ?? 1 : 1,
          });
        }
        break;
      case "disconnect":
        if (event.routingId) {
          const worker = workerLabel(event.routingId);
          this.#joinedAt.delete(worker);
          const code = event.code ?? (event.reason ? "error" : "closed");
          bump(this.#left, code);
          this.events[emitHubEvent]("worker.left", {
            worker,
            remote: event.remote,
            reason: event.reason ?? "connection closed",
            code,
          });
        }
        break;
    }
  }

  /** Samples the queue depth and the workers connected (once per heartbeat, and when read). */
  sample(queued: number, workers: number): void {
    this.#history.sample(this.#now(), queued, workers);
  }

  /** The figures of a service; past {@linkcode MAX_SERVICES}, the rest share one entry. */
  #figures(name: string): ServiceMetrics {
    let figures = this.#services.get(name);
    if (figures === undefined) {
      if (this.#services.size >= MAX_SERVICES) return this.#figures("(other)");
      figures = new ServiceMetrics(name);
      this.#services.set(name, figures);
    }
    return figures;
  }

  /** Every figure now. */
  metrics(stats: HubStats, workers: Iterable<WorkerState<unknown>>, traffic: Traffic) {
    let quarantined = 0;
    for (const w of workers) if (w.quarantined) quarantined++;
    // A service with workers or requests now but nothing counted yet has its gauges too.
    for (const name of Object.keys(stats.services)) this.#figures(name);
    const services: ServiceSnapshot[] = [];
    for (const s of this.#services.values()) {
      const requests = {} as Record<OutcomeLabel, number>;
      OUTCOMES.forEach((label, i) => requests[label] = s.requests[i]);
      const now = stats.services[s.name];
      services.push({
        service: s.name,
        requests,
        queueWait: histogram(s.queueWait),
        serviceTime: histogram(s.service),
        latency: histogram(s.latency),
        workers: now?.workers ?? 0,
        busy: now?.busy ?? 0,
        queued: now?.queued ?? 0,
        pending: now?.pending ?? 0,
        redispatched: now?.redispatched ?? 0,
      });
    }
    const snapshot: MetricsSnapshot = {
      startedAt: this.#startedAt,
      uptimeSeconds: (this.#now() - this.#startedNow) / 1000,
      services,
      workers: stats.workers,
      busy: stats.busy,
      quarantined,
      bytesReceived: traffic.bytesReceived,
      bytesSent: traffic.bytesSent,
      connectionsAccepted: this.#accepted,
      connectionsRefused: Object.fromEntries(this.#refused),
      handshakeFailures: Object.fromEntries(this.#handshakeFailures),
      workersLeft: Object.fromEntries(this.#left),
      quarantines: this.#quarantines,
      unexpectedResponses: this.#unexpected,
    };
    return snapshot;
  }

  /** Figures, up to `limit` workers (by id), history and recent events. */
  status(
    stats: HubStats,
    workers: Iterable<WorkerState<unknown>>,
    traffic: Traffic,
    endpoint: string | undefined,
    limit: number,
  ): HubStatus {
    const now = this.#now();
    this.#history.sample(now, stats.queued, stats.workers);
    const all = [...workers];
    const rows = all.map((w) => this.#row(w, now)).sort((a, b) => a.id < b.id ? -1 : 1);
    return {
      time: Date.now(),
      endpoint: endpoint ?? null,
      metrics: this.metrics(stats, all, traffic),
      workers: rows.slice(0, Math.max(0, limit)),
      workersTotal: all.length,
      history: this.#history.series(now),
      events: this.events.recent(),
    };
  }

  #row(w: WorkerState<unknown>, now: number): WorkerRow {
    const id = workerLabel(w.id);
    const joined = this.#joinedAt.get(id);
    return {
      id,
      address: w.remote ?? null,
      runtime: w.extended ? "gibbs-ts" : "gibbs 0.3",
      service: w.service,
      capacity: w.extended ? w.capacity : 1,
      held: w.held.length,
      served: w.served,
      meanMs: w.serviceMs < 0 ? null : Math.round(w.serviceMs * 1000) / 1000,
      lastHeardMs: Number.isFinite(w.lastSeen) ? Math.max(0, Math.round(now - w.lastSeen)) : null,
      connectedSeconds: joined === undefined ? 0 : Math.round((now - joined) / 100) / 10,
      quarantined: w.quarantined,
    };
  }

  #peerRefused(event: SocketEvent, code: string): void {
    this.events[emitHubEvent]("peer.refused", {
      remote: event.remote,
      code,
      reason: event.reason ?? code,
    });
  }
}

function histogram(h: Histogram): HistogramSnapshot {
  return {
    bucketsMs: Array.from(h.bounds),
    cumulative: h.cumulative(),
    sumMs: h.sum,
    count: h.count,
  };
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** A routing id as text: as it is when printable (gibbs's 32 hex chars), else `0x` and hex. */
export function workerLabel(id: Uint8Array): string {
  const printable = id.length > 0 && id.every((b) => b >= 0x20 && b < 0x7f);
  if (printable) return String.fromCharCode(...id);
  return `0x${Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A dispatcher's worker name (`describeId`: printable ids in quotes) as a bare label. */
function unquote(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  return name.length >= 2 && name.startsWith('"') && name.endsWith('"') ? name.slice(1, -1) : name;
}
