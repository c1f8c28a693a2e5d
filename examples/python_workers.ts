/**
 * A TypeScript hub driving Python gibbs workers. The workers here are the gibbs-0.3-protocol
 * workers of the test suite (pyzmq + msgpack); a real deployment runs `gibbs.Worker`:
 *
 *   python -c 'from gibbs import Worker; from mymodel import Model; Worker(Model).run()'
 *
 * Run: deno run -A examples/python_workers.ts   (needs python3-zmq and python3-msgpack)
 *
 * @module
 */

import { Hub, UserCodeError } from "../mod.ts";

const hub = new Hub({ endpoint: "tcp://127.0.0.1:0" });
const endpoint = await hub.ready;
const port = endpoint.slice(endpoint.lastIndexOf(":") + 1);
const peer = new URL("../tests/peers/gibbs_py.py", import.meta.url).pathname;

const workers = [0, 1].map(() =>
  new Deno.Command("/usr/bin/python3", {
    args: [
      peer,
      "worker",
      "--host",
      "127.0.0.1",
      "--port",
      port,
      "--model",
      "scaled",
      "--kwargs",
      '{"factor": 10}',
    ],
    stdout: "null",
    stderr: "null",
  }).spawn()
);

while (hub.workers < 2) await new Promise((r) => setTimeout(r, 20));
console.log("2 Python workers connected");
console.log("scaled(4) =", await hub.request(4)); // 40, computed in Python
console.log(
  "in parallel:",
  await Promise.all([1, 2, 3].map((x) => hub.request(x))),
);
try {
  await hub.request(); // no argument: Python raises IndexError
} catch (error) {
  if (error instanceof UserCodeError) console.log("Python raised:", error.message);
}
for (const w of workers) w.kill("SIGTERM");
await Promise.all(workers.map((w) => w.status));
await hub.close();
