/**
 * Browser workers, end to end: a hub taking workers over tcp (port 5019) and WebSocket
 * (port 5020), with its HTTP gateway and the two example pages on port 8080.
 *
 *   deno run -A examples/browser/serve.ts
 *   open http://localhost:8080/            (each tab is a worker; open several)
 *   open http://localhost:8080/client.html (sends requests through the gateway)
 *   deno run -A mod.ts worker examples/slow_model.ts   (a tcp worker in the same pool)
 *
 * The same without this script: `gibbs hub --http 8080 --ws 5020` serves /gibbs.js, and any page
 * of the hub's host can import it (see worker.html).
 *
 * @module
 */

import { Hub } from "../../mod.ts";
import { gatewayHandler } from "../../src/cli/gateway.ts";

const hub = new Hub({ port: 5019, endpoints: ["ws://0.0.0.0:5020"] });
await hub.ready;
const gateway = gatewayHandler(hub);
const pages: Record<string, URL> = {
  "/": new URL("./worker.html", import.meta.url),
  "/client.html": new URL("./client.html", import.meta.url),
};

const server = Deno.serve({ port: 8080 }, async (request) => {
  const page = pages[new URL(request.url).pathname];
  if (page === undefined) return gateway(request);
  return new Response(await Deno.readFile(page), {
    headers: { "content-type": "text/html; charset=utf-8" },
  });
});

Deno.addSignalListener("SIGINT", async () => {
  await server.shutdown();
  await hub.close();
  Deno.exit(0);
});
console.log(
  `hub: workers over ${hub.endpoints.join(" and ")}; ` +
    "pages on http://localhost:8080/ (a worker) and /client.html (Ctrl-C stops)",
);
