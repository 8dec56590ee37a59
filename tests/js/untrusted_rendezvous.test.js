// Hostile beacons and capsule hosts as the browser's rendezvous meets them: a real HTTP server
// on 127.0.0.1 and the real fetch. Each bad answer is a report with a stable code, in bounded
// time; a round never hangs on one beacon.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";

import { announce, fetchCapsule } from "../../static/swarm/adapters/rendezvous.js";
import { makeIdentity } from "./support/network.js";

const OPTIONS = { timeoutMs: 300, retries: 0, backoffMs: 1 };

async function withServer(handler, work) {
  const sockets = new Set();
  const server = createServer(handler);
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await work(`http://127.0.0.1:${server.address().port}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

// Headers at once, then a byte now and then: the body never ends.
function trickle(_request, response) {
  response.writeHead(200, { "content-type": "application/json" });
  response.write('{"ok":true,"peers":[');
  const timer = setInterval(() => response.write(" "), 50);
  response.on("close", () => clearInterval(timer));
}

async function context() {
  const me = await makeIdentity("main", Date.now());
  return { me, ctx: { community: "main", selfId: me.peerId, fetchImpl: fetch, options: OPTIONS, sleep: async () => {}, clock: Date.now } };
}

test("a beacon that sends its headers and then drips its body is a timeout", async () => {
  const { me, ctx } = await context();
  await withServer(trickle, async (base) => {
    const started = Date.now();
    const report = await announce(`${base}/beacon/v1/`, me.ticket.envelope, ctx);
    assert.deepEqual([report.ok, report.code, report.tickets], [false, "timeout", []]);
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
  });
});

test("a capsule host that drips its body is a timeout", async () => {
  const { ctx } = await context();
  await withServer(trickle, async (base) => {
    const started = Date.now();
    const report = await fetchCapsule(`${base}/capsules/main.json`, { ...ctx, trusted: [] });
    assert.deepEqual([report.ok, report.code], [false, "timeout"]);
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
  });
});

test("garbage, a redirect loop and an HTML error page are reports with stable codes", async () => {
  const { me, ctx } = await context();
  const cases = [
    [(_req, res) => res.end("\u00ff\u00fe not json"), "bad_json"],
    [(_req, res) => res.end("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["), "bad_json"],
    [(_req, res) => res.writeHead(502, { "content-type": "text/html" }).end("<h1>Bad gateway</h1>"), "http_502"],
    [(req, res) => res.writeHead(302, { location: req.url }).end(), "network"],
  ];
  for (const [handler, code] of cases) {
    await withServer(handler, async (base) => {
      const report = await announce(`${base}/beacon/v1/`, me.ticket.envelope, ctx);
      assert.deepEqual([report.ok, report.code, report.tickets], [false, code, []], code);
    });
  }
});

test("a beacon listing far more peers than any beacon serves has only the first ones checked", async () => {
  const { me, ctx } = await context();
  const other = await makeIdentity("main", Date.now());
  const peers = Array.from({ length: 5_000 }, () => other.ticket.envelope);
  await withServer(
    (_req, res) => res.end(JSON.stringify({ ok: true, peers })),
    async (base) => {
      const report = await announce(`${base}/beacon/v1/`, me.ticket.envelope, ctx);
      assert.equal(report.ok, true);
      assert.equal(report.tickets.length, 200);
    },
  );
});
