// PeerJS server (npm `peer`, pinned in package.json) through its library API, for bench/ (docs/benchmarks.md).
//   PORT=9000 node server.js
// Bound to 127.0.0.1; the connection limit is raised for the 10k idle-connection workload, and so is the
// heartbeat timeout (the load generator sends no HEARTBEAT while it holds idle connections).
"use strict";
const { PeerServer } = require("peer");

const port = Number(process.env.PORT || 9000);
const server = PeerServer(
  {
    host: "127.0.0.1",
    port,
    path: "/",
    key: "peerjs",
    concurrent_limit: 1000000,
    alive_timeout: 600000,
  },
  () => console.log(`peerjs listening on 127.0.0.1:${port}`),
);
server.on("error", (err) => console.error("peerjs error:", err && err.message));
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
