/**
 * The HTTP gateway of `gibbs hub`: JSON requests in, results out.
 *
 * @module
 */

import {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestTimeoutError,
  UserCodeError,
} from "../gibbs/errors.ts";
import type { Hub, RequestOptions } from "../gibbs/hub.ts";
import type { ResponseStream } from "../gibbs/response_stream.ts";
import { browserBundle } from "../transport/browser_bundle.ts";
import type { HttpHandler } from "../transport/runtime_types.ts";

/**
 * JSON has no bytes and no big integers: bytes become `{"$bytes": base64}`, integers beyond
 * 2^53 become decimal strings.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    if (v instanceof Uint8Array) return { $bytes: base64(v) };
    return v;
  });
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function reply(status: number, body: unknown): Response {
  return new Response(toJson(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function badRequest(message: string): Response {
  return reply(400, { error: message });
}

/** What a request body gives: the hub request's options, or the reason it is malformed. */
function parseBody(body: unknown): RequestOptions | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return 'body must be an object like {"args": [...], "kwargs": {...}}';
  }
  const { args = [], kwargs = {}, timeout, retries } = body as Record<string, unknown>;
  if (!Array.isArray(args)) return '"args" must be an array';
  if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) {
    return '"kwargs" must be an object';
  }
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0))) {
    return '"timeout" must be a positive number of seconds';
  }
  if (retries !== undefined && (!Number.isInteger(retries) || (retries as number) < -1)) {
    return '"retries" must be an integer >= -1';
  }
  return {
    args,
    kwargs: kwargs as Record<string, unknown>,
    timeout: timeout as number | undefined,
    retries: retries as number | undefined,
  };
}

/** The HTTP status and body for a failed request. */
function failure(error: unknown): [number, Record<string, unknown>] {
  if (error instanceof UserCodeError) {
    return [500, { error: error.message, traceback: error.traceback }];
  }
  if (error instanceof RequestTimeoutError) return [504, { error: error.message }];
  if (error instanceof QueueFullError || error instanceof HubClosedError) {
    return [503, { error: error.message }];
  }
  if (error instanceof GibbsError) return [502, { error: error.message }];
  if (error instanceof RangeError) return [400, { error: error.message }];
  return [500, { error: String(error) }];
}

/**
 * Streams a request's chunks: Server-Sent Events (`event: chunk` per chunk, then `event: end`
 * or `event: error`) when the client accepts `text/event-stream`, else NDJSON (`{"chunk": v}`
 * per line, then `{"end": true}` or `{"error": ...}`). The HTTP client going away cancels it.
 */
function streamResponse(stream: ResponseStream, accept: string): Response {
  const sse = accept.includes("text/event-stream");
  const encoder = new TextEncoder();
  const line = (event: string, data: unknown) =>
    encoder.encode(
      sse ? `event: ${event}\ndata: ${toJson(data)}\n\n` : `${toJson({ [event]: data })}\n`,
    );
  const iterator = stream[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) {
          controller.enqueue(line("end", true));
          controller.close();
        } else {
          controller.enqueue(line("chunk", next.value));
        }
      } catch (error) {
        controller.enqueue(line("error", failure(error)[1]));
        controller.close();
      }
    },
    cancel() {
      iterator.return?.();
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": sse ? "text/event-stream" : "application/x-ndjson",
      "cache-control": "no-cache",
    },
  });
}

/** `GET /gibbs.js`: the browser build, importable from pages of any origin. */
async function serveBrowserBuild(request: Request): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return reply(405, { error: "use GET" });
  }
  let js: Uint8Array;
  try {
    js = await browserBundle();
  } catch (error) {
    return reply(500, { error: `cannot build the browser bundle: ${(error as Error).message}` });
  }
  return new Response(request.method === "HEAD" ? null : js as Uint8Array<ArrayBuffer>, {
    headers: {
      "content-type": "text/javascript; charset=utf-8",
      "access-control-allow-origin": "*",
      "cache-control": "no-cache",
    },
  });
}

/**
 * Builds the gateway's handler:
 * `POST /request` `{"args": [...], "kwargs": {...}, "timeout": s, "retries": n}` →
 * 200 `{"result"}`, 500 `{"error","traceback"}` on a failure in user code, 504 on timeout,
 * 503 when the queue is full, 400 on a malformed body; `POST /stream` with the same body →
 * the chunks as Server-Sent Events or NDJSON (by `Accept`); `POST /services/NAME/request` and
 * `/services/NAME/stream` → the same for a service; `GET /health` → 200 `{"workers", ...}`;
 * `GET /gibbs.js` → the browser build (a Worker for web pages, to import from any origin).
 */
export function gatewayHandler(hub: Hub): HttpHandler {
  return async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/gibbs.js") return await serveBrowserBuild(request);
    if (path === "/health") {
      if (request.method !== "GET") return reply(405, { error: "use GET" });
      return reply(200, hub.stats());
    }
    const route = /^(?:\/services\/([^/]+))?\/(request|stream)$/.exec(path);
    if (route === null) return reply(404, { error: `no route ${path}` });
    if (request.method !== "POST") return reply(405, { error: "use POST" });
    let body: unknown;
    try {
      body = await request.json();
    } catch {
      return badRequest("body is not JSON");
    }
    const options = parseBody(body);
    if (typeof options === "string") return badRequest(options);
    const service = route[1] === undefined ? undefined : decodeURIComponent(route[1]);
    const full: RequestOptions = { ...options, service, signal: request.signal };
    if (route[2] === "stream") {
      return streamResponse(hub.streamWith(full), request.headers.get("accept") ?? "");
    }
    try {
      return reply(200, { result: await hub.requestWith(full) });
    } catch (error) {
      const [status, body] = failure(error);
      return reply(status, body);
    }
  };
}
