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
import { isInteger, isSafeNumber, parse as parseLossless } from "lossless-json";

/** Largest request body the gateway reads by default: 16 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Options of {@linkcode gatewayHandler}. */
export interface GatewayOptions {
  /**
   * Largest request body in bytes; a larger one is answered 413 without being read further.
   * @default {16 MiB}
   */
  maxBodyBytes?: number;
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** A body the gateway refuses, with the status to answer. */
class BodyError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}
import { observabilityRoute } from "./observability.ts";

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

function formatBytes(n: number): string {
  if (n >= 1024 ** 2 && n % 1024 ** 2 === 0) return `${n / 1024 ** 2} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/**
 * Reads the body as text, at most `limit` bytes: a `Content-Length` over it is refused before
 * anything is read, and a body that grows past it (chunked, or lying about its length) is cut
 * off as soon as it does.
 */
async function readBody(request: Request, limit: number): Promise<string> {
  const tooLarge = (size: string) =>
    new BodyError(413, `body${size} is over the limit of ${formatBytes(limit)} (--max-body)`);
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) throw tooLarge(` of ${declared} bytes`);
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      reader.cancel().catch(() => {});
      throw tooLarge("");
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BodyError(400, "body is not UTF-8 text");
  }
}

/**
 * JSON numbers as the request needs them: integers beyond 2^53 exactly, as bigints (sent as
 * 64-bit msgpack integers), where `JSON.parse` would round them; integers beyond 64 bits are
 * refused, since msgpack cannot carry them.
 */
function parseNumber(text: string): number | bigint {
  if (!isInteger(text) || isSafeNumber(text)) return Number(text);
  const n = BigInt(text);
  if (n < INT64_MIN || n > UINT64_MAX) {
    throw new BodyError(400, `integer ${text} does not fit in 64 bits`);
  }
  return n;
}

/** Parses the body as JSON, numbers exactly (see {@linkcode parseNumber}). */
function parseJson(text: string): unknown {
  try {
    return parseLossless(text, null, parseNumber);
  } catch (error) {
    if (error instanceof BodyError) throw error;
    throw new BodyError(400, `body is not JSON: ${(error as Error).message}`);
  }
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
 * 503 when the queue is full or the hub closed, 400 on a malformed body, 413 on a body over
 * `maxBodyBytes`; `POST /stream` with the same body → the chunks as Server-Sent Events or
 * NDJSON (by `Accept`); `POST /services/NAME/request` and `/services/NAME/stream` → the same
 * for a service; `GET /health` → 200 `{"workers", ...}`; `GET /metrics`, `GET /status` and the
 * dashboard at `GET /` (see {@linkcode observabilityRoute}); `GET /gibbs.js` → the browser build
 * (a Worker for web pages, to import from any origin). Integers in the body are read exactly,
 * beyond 2^53 too.
 */
export function gatewayHandler(hub: Hub, options: GatewayOptions = {}): HttpHandler {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/gibbs.js") return await serveBrowserBuild(request);
    const observed = observabilityRoute(hub, request, path);
    if (observed !== null) return observed;
    if (path === "/health") {
      if (request.method !== "GET") return reply(405, { error: "use GET" });
      return reply(200, hub.stats());
    }
    const route = /^(?:\/services\/([^/]+))?\/(request|stream)$/.exec(path);
    if (route === null) return reply(404, { error: `no route ${path}` });
    if (request.method !== "POST") return reply(405, { error: "use POST" });
    let body: unknown;
    try {
      body = parseJson(await readBody(request, maxBodyBytes));
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      const response = reply(error.status, { error: error.message });
      // The rest of an oversized upload is not worth reading: the connection closes instead.
      if (error.status === 413) response.headers.set("connection", "close");
      return response;
    }
    const parsed = parseBody(body);
    if (typeof parsed === "string") return badRequest(parsed);
    const service = route[1] === undefined ? undefined : decodeURIComponent(route[1]);
    const full: RequestOptions = { ...parsed, service, signal: request.signal };
    if (route[2] === "stream") {
      return streamResponse(hub.streamWith(full), request.headers.get("accept") ?? "");
    }
    try {
      return reply(200, { result: await hub.requestWith(full) });
    } catch (error) {
      const [status, failed] = failure(error);
      return reply(status, failed);
    }
  };
}
