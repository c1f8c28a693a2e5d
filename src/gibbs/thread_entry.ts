/**
 * What runs on each handler thread of a worker: it imports the handler's module, constructs the
 * handler once, and serves the calls its worker posts, several at once when they are async. The
 * request's bytes are decoded and the response encoded here, off the thread that owns the
 * connection.
 *
 * @module
 */

import { runtime } from "../transport/runtime.ts";
import { CODE_ERROR, decodeRequest, encodeResponse } from "./codec.ts";
import { errorText, type Instance, instantiate } from "./handler.ts";
import { HandlerModuleError, importHandler } from "./handler_module.ts";
import { Credits, respond, respondBatch } from "./serve.ts";
import type { FromThread, ToThread } from "./thread_protocol.ts";

const port = runtime.parentPort();
if (port !== null) {
  let instance: Instance | null = null;
  const calls = new Map<number, { controller: AbortController; credits?: Credits }>();
  /** Moves a copy of `bytes`: msgpackr's output may share its buffer with others. */
  const own = (bytes: Uint8Array) => bytes.slice();
  const post = (message: FromThread, transfer?: ArrayBuffer[]) => port.post(message, transfer);
  port.onMessage(async (data) => {
    const message = data as ToThread;
    switch (message.type) {
      case "init":
        try {
          const handler = await importHandler(new URL(message.module), message.export);
          instance = instantiate(handler, message.args, message.kwargs);
          post({ type: "ready" });
        } catch (error) {
          const module = error instanceof HandlerModuleError ? error : undefined;
          post({
            type: "init-error",
            text: module ? module.message : errorText(error),
            kind: module ? "module" : "handler",
            reason: module?.reason,
          });
        }
        return;
      case "credit":
        calls.get(message.id)?.credits?.give(message.n);
        return;
      case "cancel": {
        const call = calls.get(message.id);
        if (call === undefined) return;
        const reason = new Error(message.reason);
        call.controller.abort(reason);
        call.credits?.close(reason);
        return;
      }
      case "batch": {
        let responses: Uint8Array[];
        try {
          const items = message.payloads.map((payload) => decodeRequest(payload));
          responses = await respondBatch(instance!, items);
        } catch (error) {
          responses = message.payloads.map(() => encodeResponse("", CODE_ERROR, errorText(error)));
        }
        const copies = responses.map(own);
        post(
          { type: "batch-done", id: message.id, responses: copies },
          copies.map((c) => c.buffer),
        );
        return;
      }
      case "call": {
        const controller = new AbortController();
        const credits = message.window !== undefined ? new Credits(message.window) : undefined;
        calls.set(message.id, { controller, credits });
        let response: Uint8Array;
        try {
          const { reqId, args, kwargs } = decodeRequest(message.payload);
          response = await respond(instance!, reqId, args, kwargs, {
            signal: controller.signal,
            stream: credits && {
              credits,
              send: (chunk) => {
                const copy = own(chunk);
                post({ type: "chunk", id: message.id, chunk: copy }, [copy.buffer]);
              },
            },
          });
        } catch (error) {
          // The worker checked the request before posting it: this is a bug, not bad input.
          response = encodeResponse("", CODE_ERROR, errorText(error));
        }
        calls.delete(message.id);
        const copy = own(response);
        post({ type: "done", id: message.id, response: copy }, [copy.buffer]);
        return;
      }
    }
  });
}
