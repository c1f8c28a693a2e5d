/**
 * One logging path for hubs, workers and the CLI: structured records with levels, written as
 * text for people or as one JSON object per line for log shippers.
 *
 * @module
 */

/** Severity of a log record, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** How a {@linkcode Logger} made by {@linkcode createLogger} writes its records. */
export type LogFormat = "text" | "json";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Every level, least severe first (for option parsing). */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** One thing worth logging. Fields beyond these are kept as they are. */
export interface LogRecord {
  /** Severity. */
  level: LogLevel;
  /** Who speaks: `"hub"`, `"worker 3f2a…"`. */
  source: string;
  /** What happened, as a stable dotted name: `peer.dropped`, `request.redispatched`. */
  event: string;
  /** What happened, in words. */
  message: string;
  /** The peer concerned (an address or a routing id), when there is one. */
  peer?: string;
  /** Why, in words, when the event is a failure or a drop. */
  reason?: string;
  /** Anything else that helps (counts, durations in whole milliseconds). */
  [field: string]: unknown;
}

/**
 * Where log records go. `level` is the least severe level the logger wants; records below it
 * are not even built.
 */
export interface Logger {
  /** The least severe level written. */
  readonly level: LogLevel;
  /** Writes one record (its level is at least {@linkcode Logger.level}). */
  write(record: LogRecord): void;
}

/**
 * What the `logger` option of a Hub or Worker takes: a {@linkcode Logger}, or a function given
 * each warning or error as one line of text.
 */
export type LoggerOption = Logger | ((message: string) => void);

/** Options of {@linkcode createLogger}. */
export interface CreateLoggerOptions {
  /**
   * Least severe level written.
   * @default {"info"}
   */
  level?: LogLevel;
  /**
   * `"text"`: `[gibbs hub] warning: message`; `"json"`: one object per line with `time`,
   * `level`, `source`, `event`, `message` and the record's other fields.
   * @default {"text"}
   */
  format?: LogFormat;
  /**
   * Where each line goes.
   * @default {console.error}
   */
  write?: (line: string) => void;
  /**
   * Clock for the `time` field of JSON lines, in epoch milliseconds.
   * @default {Date.now}
   */
  clock?: () => number;
}

/**
 * Makes a logger writing text or JSON lines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLogger } from "./logger.ts";
 * const lines: string[] = [];
 * const logger = createLogger({
 *   level: "info",
 *   format: "json",
 *   write: (line) => lines.push(line),
 *   clock: () => 0,
 * });
 * logger.write({ level: "warn", source: "hub", event: "peer.dropped", message: "dropped" });
 * assert.deepEqual(JSON.parse(lines[0]), {
 *   time: "1970-01-01T00:00:00.000Z",
 *   level: "warn",
 *   source: "hub",
 *   event: "peer.dropped",
 *   message: "dropped",
 * });
 * ```
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  if (!(level in RANK)) throw new RangeError(`unknown log level "${level}"`);
  const write = options.write ?? ((line: string) => console.error(line));
  const clock = options.clock ?? Date.now;
  if (options.format === "json") {
    return {
      level,
      write: (record) => {
        const { level, source, event, message, ...rest } = record;
        write(
          JSON.stringify({
            time: new Date(clock()).toISOString(),
            level,
            source,
            event,
            message,
            ...rest,
          }, jsonValue),
        );
      },
    };
  }
  return { level, write: (record) => write(textLine(record)) };
}

/** The text form of a record: `[gibbs hub] warning: message`. */
export function textLine(record: LogRecord): string {
  const prefix = record.level === "warn"
    ? "warning: "
    : record.level === "error"
    ? "error: "
    : record.level === "debug"
    ? "debug: "
    : "";
  return `[gibbs ${record.source}] ${prefix}${record.message}`;
}

function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Array.from(value);
  if (value instanceof Error) return value.message;
  return value;
}

/** The default logger: warnings and errors as text on standard error. */
export const defaultLogger: Logger = createLogger({ level: "warn" });

/**
 * The logging end used inside a hub or worker: builds records only when the logger wants their
 * level, and never lets a failing logger break the caller.
 *
 * @ignore
 */
export class Log {
  #logger: Logger;
  #rank: number;
  #source: string;

  /** Wraps the `logger` option (default {@linkcode defaultLogger}) for one source. */
  constructor(option: LoggerOption | undefined, source: string) {
    this.#logger = typeof option === "function" ? functionLogger(option) : option ?? defaultLogger;
    this.#rank = RANK[this.#logger.level] ?? RANK.info;
    this.#source = source;
  }

  /** True when records of `level` are written. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#rank;
  }

  /** Logs at debug level. */
  debug(event: string, message: string, fields?: Record<string, unknown>): void {
    if (this.#rank <= RANK.debug) this.#write("debug", event, message, fields);
  }

  /** Logs at info level. */
  info(event: string, message: string, fields?: Record<string, unknown>): void {
    if (this.#rank <= RANK.info) this.#write("info", event, message, fields);
  }

  /** Logs at warn level. */
  warn(event: string, message: string, fields?: Record<string, unknown>): void {
    if (this.#rank <= RANK.warn) this.#write("warn", event, message, fields);
  }

  /** Logs at error level. */
  error(event: string, message: string, fields?: Record<string, unknown>): void {
    this.#write("error", event, message, fields);
  }

  #write(
    level: LogLevel,
    event: string,
    message: string,
    fields: Record<string, unknown> | undefined,
  ): void {
    try {
      this.#logger.write({ ...fields, level, source: this.#source, event, message });
    } catch {
      // A logger that throws must not take the protocol down with it.
    }
  }
}

function functionLogger(fn: (message: string) => void): Logger {
  return { level: "warn", write: (record) => fn(record.message) };
}

/** A duration for a log line: whole milliseconds (`10018 ms`), seconds past a minute. */
export function formatMs(ms: number): string {
  if (ms >= 60_000) return `${(ms / 1000).toFixed(0)} s`;
  return `${Math.round(ms)} ms`;
}
