/**
 * An HTTP app scaling a slow model: `Deno.serve` in front of a hub, with workers as child
 * processes. Requests are served concurrently by as many workers as are running.
 *
 *   deno run -A examples/http_app.ts [WORKERS]
 *   curl -s localhost:8000/predict -d 'I love this'
 *
 * @module
 */

import { Hub, spawnWorkers, UserCodeError } from "../mod.ts";

const count = Number(Deno.args[0] ?? 4);
const hub = new Hub({ endpoint: "tcp://127.0.0.1:0" });
const endpoint = await hub.ready;
const workers = spawnWorkers(new URL("./slow_model.ts", import.meta.url), {
  count,
  endpoint,
  quiet: true,
});

const server = Deno.serve({ port: 8000 }, async (request) => {
  if (new URL(request.url).pathname !== "/predict" || request.method !== "POST") {
    return new Response("POST a text to /predict\n", { status: 404 });
  }
  try {
    const prediction = await hub.requestWith({ args: [await request.text()], timeout: 10 });
    return Response.json(prediction);
  } catch (error) {
    const status = error instanceof UserCodeError ? 500 : 503;
    return Response.json({ error: (error as Error).message }, { status });
  }
});

Deno.addSignalListener("SIGINT", async () => {
  await server.shutdown();
  await workers.stop();
  await hub.close();
  Deno.exit(0);
});
console.log(`serving http://localhost:8000/predict with ${count} workers (Ctrl-C stops)`);
