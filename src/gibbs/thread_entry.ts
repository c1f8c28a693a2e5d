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
import { errorText, instantiate, respond } from "./handler.ts";
import { HandlerModuleError, importHandler } from "./handler_module.ts";
import type { FromThread, ToThread } from "./thread_protocol.ts";

const port = runtime.parentPort();
if (port !== null) {
  let serve: ((args: readonly unknown[], kwargs: Record<string, unknown>) => unknown) | null = null;
  const post = (message: FromThread, transfer?: ArrayBuffer[]) => port.post(message, transfer);
  port.onMessage(async (data) => {
    const message = data as ToThread;
    if (message.type === "init") {
      try {
        const handler = await importHandler(new URL(message.module), message.export);
        serve = instantiate(handler, message.args, message.kwargs);
        post({ type: "ready" });
      } catch (error) {
        const kind = error instanceof HandlerModuleError ? "module" : "handler";
        post({
          type: "init-error",
          text: kind === "module" ? (error as Error).message : errorText(error),
          kind,
        });
      }
      return;
    }
    let response: Uint8Array;
    try {
      const { reqId, args, kwargs } = decodeRequest(message.payload);
      response = await respond(serve!, reqId, args, kwargs);
    } catch (error) {
      // The worker checked the request before posting it: this is a bug, not bad input.
      response = encodeResponse("", CODE_ERROR, errorText(error));
    }
    // msgpackr's output may share its buffer with others: move a copy of our own.
    const own = response.slice();
    post({ type: "done", id: message.id, response: own }, [own.buffer]);
  });
}
