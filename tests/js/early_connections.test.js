// Connections offered while the page's content layers attach (static/swarm/adapters/early.js):
// held with the data they carried, adopted in order once ready, with that data delivered again.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";

import { EarlyConnections } from "../../static/swarm/adapters/early.js";

/** What peer.js's #adopt does with a connection: listen for its data. */
function adopter(log) {
  return (conn) => {
    log.push(["adopted", conn.peer]);
    conn.on("data", (data) => log.push(["data", conn.peer, data]));
  };
}

function conn(peer) {
  return Object.assign(new EventEmitter(), { peer });
}

test("a connection offered before ready waits, then is adopted with the data it carried, in order", () => {
  const early = new EarlyConnections();
  const log = [];
  const a = conn("pa");
  const b = conn("pb");
  early.offer(a, adopter(log));
  a.emit("data", "hello");
  early.offer(b, adopter(log));
  a.emit("data", "have");
  b.emit("data", "hi");
  assert.deepEqual(log, [], "nothing is adopted before the content layers are in");
  early.release(adopter(log));
  assert.equal(early.ready, true);
  assert.deepEqual(log, [
    ["adopted", "pa"],
    ["data", "pa", "hello"],
    ["data", "pa", "have"],
    ["adopted", "pb"],
    ["data", "pb", "hi"],
  ]);
  // Later data goes to the adopter once, not to the holder too.
  a.emit("data", "after");
  assert.deepEqual(log.at(-1), ["data", "pa", "after"]);
  assert.equal(log.filter((entry) => entry[2] === "after").length, 1);
  assert.equal(a.listenerCount("data"), 1);
});

test("once ready a connection is adopted at once, and nothing stays held", () => {
  const early = new EarlyConnections();
  const log = [];
  early.release(adopter(log));
  const c = conn("pc");
  early.offer(c, adopter(log));
  c.emit("data", "x");
  assert.deepEqual(log, [
    ["adopted", "pc"],
    ["data", "pc", "x"],
  ]);
  assert.deepEqual(early.held, []);
});
