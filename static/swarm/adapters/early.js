// Connections offered before the page can take them: signaling opens while the content layers
// attach (peer.js start), and a DataConnection another peer opens in that time waits here with
// the data it carried, to be handed over in order once they have.

export class EarlyConnections {
  constructor() {
    this.ready = false;
    /** @type {{ conn: any, data: any[], keep: (data: any) => void }[]} */
    this.held = [];
  }

  /** A connection offered: adopted at once when ready, else held with its data. */
  offer(conn, adopt) {
    if (this.ready) {
      adopt(conn);
      return;
    }
    const data = [];
    const keep = (item) => data.push(item);
    conn.on("data", keep);
    this.held.push({ conn, data, keep });
  }

  /** Ready: every held connection is adopted, and the data it carried delivered again, in order. */
  release(adopt) {
    this.ready = true;
    for (const { conn, data, keep } of this.held.splice(0)) {
      conn.off("data", keep);
      adopt(conn);
      for (const item of data) conn.emit("data", item);
    }
  }
}
