// Pause and blocks (static/swarm/protocol/controls.js) with a fake clock, then in the mesh
// on the in-memory network: directions, deadlines that lift themselves, export and import.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BLOCKS_FORMAT, BlockList, ControlError, deadlineAfter, MIN_DURATION_MS, Pause, parseBlocksFile } from "../../static/swarm/protocol/controls.js";
import { Network, pair, T0 } from "./support/network.js";

const P1 = `p${"a".repeat(32)}`;
const P2 = `p${"b".repeat(32)}`;
const P3 = `p${"c".repeat(32)}`;
const MIN = 60_000;

const code = (fn) => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ControlError, String(error));
    return error.code;
  }
  assert.fail("no error");
};

// --- the pause ---

test("a pause covers its direction until its deadline, then ends by itself", () => {
  const pause = new Pause();
  assert.equal(pause.direction, null);
  pause.set("inbound", T0 + 15 * MIN, T0);
  assert.deepEqual([pause.covers("inbound"), pause.covers("outbound"), pause.direction], [true, false, "inbound"]);
  assert.equal(pause.nextDeadline(), T0 + 15 * MIN);
  assert.equal(pause.expire(T0 + 15 * MIN - 1), null, "not before its time");
  assert.deepEqual(pause.expire(T0 + 15 * MIN), { direction: "inbound", until: T0 + 15 * MIN });
  assert.equal(pause.active, false);
  assert.equal(pause.nextDeadline(), Infinity);
  pause.set("both", null, T0);
  assert.equal(pause.expire(T0 + 365 * 24 * 60 * MIN), null, "until resumed: never ends by itself");
  pause.set("outbound", null, T0);
  assert.deepEqual([pause.inbound, pause.outbound], [false, true], "a new pause replaces the old");
  pause.resume();
  assert.equal(pause.toRecord(), null);
});

test("a pause is refused with a stable code for a bad direction or a past deadline", () => {
  const pause = new Pause();
  assert.equal(
    code(() => pause.set("sideways", null, T0)),
    "bad_direction",
  );
  assert.equal(
    code(() => pause.set("both", T0, T0)),
    "bad_deadline",
  );
  assert.equal(
    code(() => pause.set("both", 1.5, T0)),
    "bad_deadline",
  );
  assert.equal(pause.active, false, "nothing changed");
});

test("durations: minutes from now, with a documented minimum", () => {
  assert.equal(deadlineAfter(null, T0), null);
  assert.equal(deadlineAfter(15, T0), T0 + 15 * MIN);
  assert.equal(deadlineAfter(0.1, T0), T0 + MIN_DURATION_MS);
  for (const bad of [0, 0.05, -1, Number.NaN, Number.POSITIVE_INFINITY, "15", 600_000]) {
    assert.equal(
      code(() => deadlineAfter(/** @type {any} */ (bad), T0)),
      "bad_deadline",
      String(bad),
    );
  }
});

test("the stored pause survives a reload; a deadline that passed meanwhile means resumed", () => {
  const pause = new Pause();
  pause.set("outbound", T0 + 60 * MIN, T0);
  const settings = JSON.parse(JSON.stringify({ pause: pause.toRecord() }));
  const back = Pause.fromSettings(settings, T0 + 30 * MIN);
  assert.deepEqual([back.pause.direction, back.pause.until, back.expired], ["outbound", T0 + 60 * MIN, null]);
  const late = Pause.fromSettings(settings, T0 + 61 * MIN);
  assert.equal(late.pause.active, false);
  assert.deepEqual(late.expired, { direction: "outbound", until: T0 + 60 * MIN });
  // The page's older setting (a boolean) is a pause of both ways until resumed.
  assert.deepEqual(Pause.fromSettings({ paused: true }, T0).pause.toRecord(), { direction: "both", until: null });
  assert.equal(Pause.fromSettings({}, T0).pause.active, false);
  assert.equal(Pause.fromSettings({ pause: { direction: "nowhere" } }, T0).pause.active, false);
});

// --- the block list ---

test("a block refuses its direction only, until it expires", () => {
  const blocks = new BlockList();
  blocks.add(P1, { direction: "inbound", reason: "  spam  ", until: T0 + 60 * MIN }, T0);
  blocks.add(P2, { direction: "outbound" }, T0 + 1);
  blocks.add(P3, {}, T0 + 2);
  assert.deepEqual(
    [blocks.blocks(P1, "inbound", T0), blocks.blocks(P1, "outbound", T0), blocks.blocks(P2, "inbound", T0), blocks.blocks(P2, "outbound", T0)],
    [true, false, false, true],
  );
  assert.deepEqual([blocks.blocks(P3, "inbound", T0), blocks.blocks(P3, "outbound", T0)], [true, true], "both by default");
  assert.equal(blocks.get(P1).reason, "spam");
  assert.deepEqual([...blocks], [P1, P2, P3], "iterates as a set of ids");
  assert.equal(blocks.size, 3);
  assert.deepEqual(blocks.outboundIds(T0), [P2, P3]);
  assert.equal(blocks.nextDeadline(), T0 + 60 * MIN);
  assert.equal(blocks.blocks(P1, "inbound", T0 + 60 * MIN), false, "not in force once its time has come");
  assert.deepEqual(blocks.expire(T0 + 60 * MIN - 1), []);
  assert.deepEqual(
    blocks.expire(T0 + 60 * MIN).map((e) => e.peerId),
    [P1],
  );
  assert.equal(blocks.has(P1), false);
  assert.equal(blocks.delete(P2), true);
  assert.equal(blocks.delete(P2), false);
  assert.deepEqual([...blocks], [P3]);
});

test("a block is refused with stable codes: malformed id, own id, direction, reason, deadline", () => {
  const blocks = new BlockList();
  for (const bad of ["", "hello", `p${"a".repeat(31)}`, `p${"A".repeat(32)}`, `p${"1".repeat(32)}`, null, 42]) {
    assert.equal(
      code(() => blocks.add(/** @type {any} */ (bad), {}, T0)),
      "bad_peer_id",
      String(bad),
    );
  }
  assert.equal(
    code(() => blocks.add(P1, { selfId: P1 }, T0)),
    "own_peer_id",
  );
  assert.equal(
    code(() => blocks.add(P1, { direction: /** @type {any} */ ("up") }, T0)),
    "bad_direction",
  );
  assert.equal(
    code(() => blocks.add(P1, { reason: "x".repeat(201) }, T0)),
    "bad_reason",
  );
  assert.equal(
    code(() => blocks.add(P1, { until: T0 - 1 }, T0)),
    "bad_deadline",
  );
  assert.equal(blocks.size, 0, "nothing was added");
  assert.equal(blocks.add(` ${P1}\n`, {}, T0).peerId, P1, "spaces around a pasted id are trimmed");
});

test("the stored list survives a reload; expired and malformed records are dropped; old id lists still load", () => {
  const blocks = new BlockList();
  blocks.add(P1, { direction: "inbound", until: T0 + 10 * MIN, reason: "r" }, T0);
  blocks.add(P2, {}, T0 + 5);
  const stored = JSON.parse(JSON.stringify({ blocks: blocks.toRecords(), blocked: [P3, "junk"] }));
  stored.blocks.push({ peerId: "nope" });
  const back = BlockList.fromSettings(stored, T0 + MIN);
  assert.deepEqual(
    back.list(),
    [
      { peerId: P3, direction: "both", reason: null, until: null, since: T0 + MIN },
      { peerId: P1, direction: "inbound", reason: "r", until: T0 + 10 * MIN, since: T0 },
      { peerId: P2, direction: "both", reason: null, until: null, since: T0 + 5 },
    ].sort((a, b) => a.since - b.since),
  );
  assert.deepEqual([...BlockList.fromSettings(stored, T0 + 10 * MIN)].sort(), [P2, P3], "P1 expired while the page was closed");
});

test("export then import into an empty list gives the same blocks", () => {
  const blocks = new BlockList();
  blocks.add(P1, { direction: "outbound", reason: "noisy", until: T0 + 8 * 60 * MIN }, T0);
  blocks.add(P2, {}, T0 + 1);
  const file = JSON.stringify(blocks.exportFile(T0 + 2));
  assert.equal(JSON.parse(file).format, BLOCKS_FORMAT);
  const fresh = new BlockList();
  assert.deepEqual(fresh.merge(parseBlocksFile(file, { now: T0 + 3 }), T0 + 3), { added: 2, updated: 0, unchanged: 0 });
  assert.deepEqual(fresh.list(), blocks.list());
});

test("import merges: new peers added, a peer in both keeps its block widened, expired entries skipped", () => {
  const mine = new BlockList();
  mine.add(P1, { direction: "inbound", reason: "mine", until: T0 + 10 * MIN }, T0);
  mine.add(P2, { direction: "both" }, T0);
  const theirs = new BlockList();
  theirs.add(P1, { direction: "outbound", reason: "theirs", until: T0 + 20 * MIN }, T0);
  theirs.add(P2, { direction: "both", until: T0 + 5 * MIN }, T0);
  theirs.add(P3, { direction: "inbound", until: T0 + 2 * MIN }, T0);
  const file = JSON.stringify(theirs.exportFile(T0));
  const entries = parseBlocksFile(file, { now: T0 + 3 * MIN });
  assert.deepEqual(
    entries.map((e) => e.peerId),
    [P1, P2],
    "P3's block ended before the import",
  );
  assert.deepEqual(mine.merge(entries, T0 + 3 * MIN), { added: 0, updated: 1, unchanged: 1 });
  assert.deepEqual(mine.get(P1), { peerId: P1, direction: "both", reason: "mine", until: T0 + 20 * MIN, since: T0 });
  assert.deepEqual(mine.get(P2).until, null, "no expiry beats an expiry");
});

test("a malformed file is refused with bad_blocks_file and names the fault; nothing is read", () => {
  const good = { format: BLOCKS_FORMAT, version: 1, exported_at: T0, blocks: [{ peer_id: P1, direction: "both", reason: null, until: null }] };
  const cases = [
    ["not json", "not JSON"],
    [JSON.stringify([1, 2]), "format"],
    [JSON.stringify({ ...good, format: "swarm-identity" }), "format"],
    [JSON.stringify({ ...good, version: 2 }), "version"],
    [JSON.stringify({ ...good, blocks: {} }), "list"],
    [JSON.stringify({ ...good, blocks: [...good.blocks, { peer_id: "pxyz" }] }), "block 1: bad_peer_id"],
    [JSON.stringify({ ...good, blocks: [...good.blocks, { peer_id: P2, direction: "left" }] }), "block 1: bad_direction"],
    [JSON.stringify({ ...good, blocks: [...good.blocks, { peer_id: P2, until: "tomorrow" }] }), "block 1: bad_deadline"],
    [JSON.stringify({ ...good, blocks: [...good.blocks, { peer_id: P2, reason: 7 }] }), "block 1: bad_reason"],
    [JSON.stringify({ ...good, blocks: [...good.blocks, good.blocks[0]] }), "listed twice"],
    [JSON.stringify({ ...good, blocks: [...good.blocks, { peer_id: P2 }] }), null],
    ["x".repeat(2_000_001), "too large"],
  ];
  for (const [text, words] of cases) {
    if (words === null) {
      assert.equal(parseBlocksFile(text, { now: T0 }).length, 2);
      continue;
    }
    try {
      parseBlocksFile(text, { now: T0 });
      assert.fail(`accepted: ${text.slice(0, 80)}`);
    } catch (error) {
      assert.equal(error.code, "bad_blocks_file", text.slice(0, 80));
      assert.ok(error.message.includes(words), `${error.message} names ${words}`);
    }
  }
  assert.equal(
    code(() => parseBlocksFile(JSON.stringify(good), { now: T0, selfId: P1 })),
    "bad_blocks_file",
    "a file that would block this page itself",
  );
});

// --- in the mesh ---

const openPeers = (peer) => peer.node.connectedPeers(0).map((p) => p.peerId);
const connected = (x, y) => openPeers(x).includes(y.identity.peerId) && openPeers(y).includes(x.identity.peerId);
const outboundTo = (x, y) => x.node.connectedPeers(0).find((p) => p.peerId === y.identity.peerId)?.outbound;

test("paused inbound: the dialer gets bye 'paused', yet this node still dials out", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const c = await net.addPeer();
  b.node.addCandidates([a.identity.ticket], "beacon", net.now); // b dials a
  a.node.addCandidates([c.identity.ticket], "beacon", net.now); // a dials c
  a.node.setPause("inbound", null, net.now);
  net.start();
  await net.runUntil(() => connected(a, c), 4);
  await net.runUntil(() => false, 2);
  assert.equal(outboundTo(a, c), true, "a dialed c");
  assert.deepEqual(openPeers(b), [], "b could not connect to a");
  assert.ok(
    b.events.some((e) => e.code === "peer_bye_paused" && e.peerId === a.identity.peerId),
    "b was told why",
  );
  assert.ok(a.events.some((e) => e.code === "refused_paused" && e.peerId === b.identity.peerId));
  // b waits a minute before trying again, then gets in once a resumes.
  a.node.setPaused(false, net.now);
  await net.advance(65_000);
  assert.ok(await net.runUntil(() => connected(a, b), 5));
});

test("paused outbound: no dial goes out, inbound is accepted; the deadline resumes dialing", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const c = await net.addPeer();
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  c.node.addCandidates([a.identity.ticket], "beacon", net.now);
  a.node.setPause("outbound", net.now + 30_000, net.now);
  net.start();
  await net.runUntil(() => connected(a, c), 4);
  assert.equal(outboundTo(a, c), false, "c dialed a");
  assert.equal(a.node.mesh.dialNow(b.identity.peerId, net.now), false, "connect by id is refused too");
  await net.advance(20_000);
  assert.equal(connected(a, b), false);
  await net.advance(15_000);
  assert.ok(a.events.some((e) => e.code === "pause_ended"));
  assert.equal(a.node.mesh.pause.active, false);
  assert.ok(await net.runUntil(() => connected(a, b), 5), "dials again after the automatic resume");
});

test("pausing a direction closes its open connections only; both is the full pause", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const c = await net.addPeer();
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  c.node.addCandidates([a.identity.ticket], "beacon", net.now);
  net.start();
  await net.runUntil(() => connected(a, b) && connected(a, c), 5);
  a.node.setPause("inbound", null, net.now);
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), [b.identity.peerId], "c had dialed a: closed; a's own dial to b stays");
  assert.equal(a.node.mesh.paused, false, "one way is not the full pause");
  a.node.setPause("both", null, net.now);
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), []);
  assert.equal(a.node.mesh.paused, true);
  assert.equal(a.node.status(net.now).reason, "paused");
});

test("a block by id of a peer never met refuses its dial; inbound-only still lets this node dial it", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  a.node.block(b.identity.peerId, net.now, { direction: "inbound", reason: "test" });
  b.node.addCandidates([a.identity.ticket], "beacon", net.now);
  net.start();
  await net.runUntil(() => false, 3);
  assert.deepEqual(openPeers(a), []);
  assert.ok(
    b.events.some((e) => e.code === "peer_bye_blocked"),
    "b is told it is blocked",
  );
  // Inbound only: a may still dial b itself.
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  assert.equal(a.node.book.has(b.identity.peerId), true);
  assert.ok(a.node.mesh.dialNow(b.identity.peerId, net.now));
  assert.ok(await net.runUntil(() => connected(a, b), 4));
  // Widened to outbound as well: the open connection (a dialed it) closes.
  a.node.block(b.identity.peerId, net.now, { direction: "both" });
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), []);
  assert.equal(a.node.mesh.dialNow(b.identity.peerId, net.now), false);
});

test("an outbound block keeps a peer from being dialed or booked; a timed block lifts itself", async () => {
  const { net, a, b } = await pair();
  a.node.block(b.identity.peerId, net.now, { direction: "outbound", until: net.now + 60_000 });
  assert.equal(a.node.book.has(b.identity.peerId), false);
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  assert.equal(a.node.book.has(b.identity.peerId), false, "its tickets are not taken");
  net.start();
  await net.advance(50_000);
  assert.equal(connected(a, b), false);
  await net.advance(15_000);
  assert.ok(a.events.some((e) => e.code === "block_expired" && e.peerId === b.identity.peerId));
  assert.equal(a.node.mesh.blocked.size, 0);
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  assert.ok(await net.runUntil(() => connected(a, b), 5));
  assert.equal(
    code(() => a.node.block(a.identity.peerId, net.now)),
    "own_peer_id",
  );
});

test("the mesh wakes for a pause or block deadline", async () => {
  const { net, a, b } = await pair();
  a.node.setPause("both", net.now + 12_000, net.now);
  a.node.block(b.identity.peerId, net.now, { until: net.now + 9_000 });
  assert.equal(a.node.nextDeadline(net.now), net.now + 9_000);
  a.node.unblock(b.identity.peerId);
  assert.equal(a.node.nextDeadline(net.now), net.now + 12_000);
});
