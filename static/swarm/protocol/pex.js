// Peer exchange: ask a connected peer for the tickets it knows (at most one request per minute
// per connection, at most 50 tickets per answer), verify each ticket, merge the good ones.
import { RATE_LIMITED, UNEXPECTED_FRAME, ProtocolError } from "./errors.js";
import { verifyTicket } from "./ticket.js";
import { MAX_PEX_PEERS } from "./wire.js";

export const PEX_INTERVAL_MS = 60_000;
export const PEX_DEFAULT_MAX = 16;
// Below this many live tickets a node asks its peers; above it, it saves the bandwidth.
export const PEX_WANT_KNOWN = 32;

/** Per-connection PEX state: who asked when, and whether we await an answer. */
export class PexChannel {
  constructor() {
    this.lastAskedAt = -Infinity; // we sent pex_req
    this.lastAnsweredAt = -Infinity; // we answered their pex_req
    this.awaiting = false;
  }

  /** Ask when we know few live peers (tickets expire, so this recurs), once a minute at most. */
  shouldAsk(now, liveKnown) {
    return liveKnown < PEX_WANT_KNOWN && now - this.lastAskedAt >= PEX_INTERVAL_MS;
  }

  request(now, max = PEX_DEFAULT_MAX) {
    this.lastAskedAt = now;
    this.awaiting = true;
    return { t: "pex_req", max: Math.min(max, MAX_PEX_PEERS) };
  }

  /** Their pex_req: throws RATE_LIMITED when they ask again within a minute. */
  answer(frame, now, book, { exclude }) {
    if (now - this.lastAnsweredAt < PEX_INTERVAL_MS) {
      throw new ProtocolError(RATE_LIMITED, "pex_req more than once per minute");
    }
    this.lastAnsweredAt = now;
    return { t: "pex", peers: book.sampleTickets(now, { exclude, limit: frame.max }) };
  }

  /** Their pex: only as the answer to our request. */
  accept() {
    if (!this.awaiting) throw new ProtocolError(UNEXPECTED_FRAME, "pex without a pex_req");
    this.awaiting = false;
  }
}

/**
 * Verify the tickets of a pex answer; tickets already known byte for byte are not verified
 * again. Resolves {accepted: [verified], rejected: [{code, message}]}.
 */
export async function verifyPexTickets(tickets, { now, community, book }) {
  const accepted = [];
  const rejected = [];
  await Promise.all(
    tickets.map(async (envelope) => {
      if (book.hasTicket(envelope)) return;
      try {
        accepted.push(await verifyTicket(envelope, { now, community }));
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        rejected.push({ code: error.code, message: error.message });
      }
    }),
  );
  return { accepted, rejected };
}
