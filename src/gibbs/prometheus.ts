/**
 * The Prometheus text exposition format (version 0.0.4) of a hub's figures, as `GET /metrics`
 * serves them and as an application that embeds a hub can append to its own `/metrics`.
 *
 * @module
 */

import type { HistogramSnapshot, MetricsSnapshot } from "./hub_observer.ts";
import { OUTCOMES } from "./metrics.ts";

/** The `Content-Type` of the text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Writes a hub's figures in the Prometheus text format. Every name starts with `gibbs_`;
 * durations are in seconds and sizes in bytes, as Prometheus's conventions ask; figures of
 * requests carry a `service` label.
 *
 * @example
 * ```ts ignore
 * import { formatPrometheus, Hub } from "./mod.ts";
 * const hub = new Hub({ port: 5019 });
 * // Beside prom-client's default registry, in an application's own /metrics handler:
 * const text = (await register.metrics()) + formatPrometheus(hub.metrics());
 * ```
 */
export function formatPrometheus(m: MetricsSnapshot): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const sample = (name: string, labels: string, value: number) => {
    out.push(`${name}${labels === "" ? "" : `{${labels}}`} ${number(value)}`);
  };

  family("gibbs_requests_total", "counter", "Requests ended, by service and outcome.");
  for (const s of m.services) {
    for (const outcome of OUTCOMES) {
      sample("gibbs_requests_total", labels({ service: s.service, outcome }), s.requests[outcome]);
    }
  }
  const histograms = [
    [
      "gibbs_request_queue_wait_seconds",
      "Time from a request's creation to the send that was answered (requests sent to a worker).",
      "queueWait",
    ],
    [
      "gibbs_request_service_seconds",
      "Time from a request's last send to its answer (requests answered by a worker).",
      "serviceTime",
    ],
    [
      "gibbs_request_duration_seconds",
      "Time from a request's creation to its end, whatever the outcome.",
      "latency",
    ],
  ] as const;
  for (const [name, help, key] of histograms) {
    family(name, "histogram", help);
    for (const s of m.services) writeHistogram(out, name, `service="${escape(s.service)}"`, s[key]);
  }
  const gauges = [
    ["gibbs_workers", "Workers connected.", "workers"],
    ["gibbs_workers_busy", "Workers holding at least one request.", "busy"],
    ["gibbs_queue_depth", "Requests waiting for a worker.", "queued"],
    ["gibbs_requests_pending", "Requests pending in all (waiting or sent).", "pending"],
  ] as const;
  for (const [name, help, key] of gauges) {
    family(name, "gauge", help);
    for (const s of m.services) sample(name, labels({ service: s.service }), s[key]);
  }
  family(
    "gibbs_redispatches_total",
    "counter",
    "Requests re-sent because their worker was lost or broke the protocol.",
  );
  for (const s of m.services) {
    sample("gibbs_redispatches_total", labels({ service: s.service }), s.redispatched);
  }
  family(
    "gibbs_workers_quarantined",
    "gauge",
    "Workers that answered garbage and get no more requests on their connection.",
  );
  sample("gibbs_workers_quarantined", "", m.quarantined);
  family("gibbs_worker_quarantines_total", "counter", "Workers quarantined.");
  sample("gibbs_worker_quarantines_total", "", m.quarantines);
  family(
    "gibbs_unexpected_responses_total",
    "counter",
    "Answers from a worker for a request never sent to it.",
  );
  sample("gibbs_unexpected_responses_total", "", m.unexpectedResponses);
  family(
    "gibbs_received_bytes_total",
    "counter",
    "Bytes read from worker connections (ZMTP framing, handshakes and heartbeats included).",
  );
  sample("gibbs_received_bytes_total", "", m.bytesReceived);
  family(
    "gibbs_sent_bytes_total",
    "counter",
    "Bytes written to worker connections (ZMTP framing, handshakes and heartbeats included).",
  );
  sample("gibbs_sent_bytes_total", "", m.bytesSent);
  family("gibbs_connections_accepted_total", "counter", "Connections accepted.");
  sample("gibbs_connections_accepted_total", "", m.connectionsAccepted);
  const byReason = [
    [
      "gibbs_connections_refused_total",
      "Connections refused before their handshake, by reason.",
      m.connectionsRefused,
    ],
    [
      "gibbs_handshake_failures_total",
      "Connections dropped before their ZMTP handshake finished, by reason.",
      m.handshakeFailures,
    ],
    [
      "gibbs_workers_left_total",
      "Workers whose connection ended, by reason (closed: they went away).",
      m.workersLeft,
    ],
  ] as const;
  for (const [name, help, counts] of byReason) {
    family(name, "counter", help);
    for (const reason of Object.keys(counts).sort()) {
      sample(name, labels({ reason }), counts[reason]);
    }
  }
  family("gibbs_hub_start_time_seconds", "gauge", "When the hub started, in Unix seconds.");
  sample("gibbs_hub_start_time_seconds", "", m.startedAt / 1000);
  return out.join("\n") + "\n";
}

function writeHistogram(out: string[], name: string, base: string, h: HistogramSnapshot): void {
  for (let i = 0; i < h.bucketsMs.length; i++) {
    out.push(`${name}_bucket{${base},le="${number(h.bucketsMs[i] / 1000)}"} ${h.cumulative[i]}`);
  }
  out.push(`${name}_bucket{${base},le="+Inf"} ${h.count}`);
  out.push(`${name}_sum{${base}} ${number(h.sumMs / 1000)}`);
  out.push(`${name}_count{${base}} ${h.count}`);
}

function labels(values: Record<string, string>): string {
  return Object.entries(values).map(([k, v]) => `${k}="${escape(v)}"`).join(",");
}

/** Escapes a label value: backslash, double quote and line feed, as the format requires. */
function escape(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A sample value: Go-style `+Inf`, `-Inf`, `NaN`; otherwise JavaScript's shortest form. */
function number(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  return String(x);
}
