/**
 * Tokens streamed to a browser as a model yields them: a page, the hub's HTTP gateway
 * (`POST /stream` answers Server-Sent Events), and two workers serving an async generator.
 *
 *   deno run -A examples/llm_stream/app.ts
 *   open http://localhost:8000/ (or: curl -N localhost:8000/stream -d '{"args": ["hi"]}')
 *
 * Closing the page mid-answer cancels the request: the generator sees `requestSignal()` abort
 * and its worker is free at once.
 *
 * @module
 */

import { Hub, spawnWorkers } from "../../mod.ts";
import { gatewayHandler } from "../../src/cli/gateway.ts";

const hub = new Hub({ endpoint: "tcp://127.0.0.1:0" });
const workers = spawnWorkers(new URL("./model.ts", import.meta.url), {
  count: 2,
  endpoint: await hub.ready,
  concurrency: 8, // an LLM server behind it would take several prompts at once
  quiet: true,
});
const page = await Deno.readTextFile(new URL("./page.html", import.meta.url));
const gateway = gatewayHandler(hub);

const server = Deno.serve({ port: 8000 }, (request) => {
  if (new URL(request.url).pathname === "/") {
    return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  return gateway(request); // /stream, /request, /health
});

Deno.addSignalListener("SIGINT", async () => {
  await hub.close();
  await server.shutdown();
  await workers.stop();
  Deno.exit(0);
});
console.log("open http://localhost:8000/ (Ctrl-C stops)");
