/**
 * The gateway's observability routes: `GET /metrics` (Prometheus text format), `GET /status`
 * (the JSON behind the dashboard and `gibbs status`), and the live dashboard at `GET /`.
 *
 * @module
 */

import type { Hub } from "../gibbs/hub.ts";
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "../gibbs/prometheus.ts";
import { DASHBOARD_HTML } from "./dashboard_page.ts";

/** Workers listed by `GET /status` unless `?workers=N` asks otherwise. */
export const STATUS_WORKERS_DEFAULT = 1000;

/**
 * Answers the observability routes of `hub`, or returns null for any other path:
 * `/metrics`, `/status[?workers=N]`, and `/` (or `/dashboard`).
 */
export function observabilityRoute(hub: Hub, request: Request, path: string): Response | null {
  if (path !== "/metrics" && path !== "/status" && path !== "/" && path !== "/dashboard") {
    return null;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response(JSON.stringify({ error: "use GET" }), {
      status: 405,
      headers: { "content-type": "application/json", allow: "GET, HEAD" },
    });
  }
  const headers = { "cache-control": "no-store" };
  if (path === "/metrics") {
    return new Response(formatPrometheus(hub.metrics()), {
      headers: { ...headers, "content-type": PROMETHEUS_CONTENT_TYPE },
    });
  }
  if (path === "/status") {
    const asked = Number(new URL(request.url).searchParams.get("workers") ?? NaN);
    const limit = Number.isInteger(asked) && asked >= 0 ? asked : STATUS_WORKERS_DEFAULT;
    return new Response(JSON.stringify(hub.status(limit)), {
      headers: { ...headers, "content-type": "application/json" },
    });
  }
  return new Response(DASHBOARD_HTML, {
    headers: { ...headers, "content-type": "text/html; charset=utf-8" },
  });
}
