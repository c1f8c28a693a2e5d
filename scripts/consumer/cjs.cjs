/**
 * CommonJS consumer check: `require()` loads the package (an ES module, through Node's
 * require(esm), Node >= 20.19) with the same exports as `import`.
 */
const assert = require("node:assert/strict");
const gibbs = require("gibbs-zmq");

for (const name of ["Hub", "Worker", "Dealer", "Router", "spawnWorkers", "GibbsError"]) {
  assert.equal(typeof gibbs[name], "function", `require("gibbs-zmq").${name}`);
}
const hub = new gibbs.Hub({ port: 0, logger: () => {} });
hub.ready
  .then((endpoint) => {
    assert.match(endpoint, /^tcp:\/\/.+:\d+$/);
    return hub.close();
  })
  .then(() => console.log("CommonJS require: the exports, a hub binds and closes"));
