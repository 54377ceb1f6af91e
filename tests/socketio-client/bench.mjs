// The socket.io fan-out benchmark's client side (scripts/bench-socketio starts the stack and runs it).
//
//   node bench.mjs HUB_URL SIM_URL TOKEN CLIENTS ROUNDS HUB_PID
//
// Opens CLIENTS sockets (WebSocket), authenticates and subscribes each, then ROUNDS times: connects
// the session through the hub's HTTP API and waits for every socket's `qr_required`; scans in the
// simulator (a state change in the page) and times until the last socket's `connected`; logs out in
// the simulator (another one) and times until the last socket's `disconnected`. Prints the figures,
// and the hub's RSS (from /proc) before the sockets, with them subscribed, and at the end.
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const [hub, sim, token, clientsArg, roundsArg, hubPid] = process.argv.slice(2);
const CLIENTS = Number(clientsArg);
const ROUNDS = Number(roundsArg);
const BATCH = 50;
const WAIT_MS = 120_000;

const rssMiB = () => {
  const line = readFileSync(`/proc/${hubPid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return (Number(line.split(/\s+/)[1]) / 1024).toFixed(1);
};
const fail = (message) => {
  console.error(`bench.mjs: ${message}`);
  process.exit(1);
};

// Each socket's arrival time of each status, in order.
const arrivals = [];
const sockets = [];
const rssBefore = rssMiB();
const connectStart = performance.now();
for (let i = 0; i < CLIENTS; i += BATCH) {
  const batch = [];
  for (let j = i; j < Math.min(i + BATCH, CLIENTS); j++) {
    const seen = [];
    arrivals.push(seen);
    const socket = io(hub, { transports: ["websocket"], reconnection: false, forceNew: true, timeout: 30_000 });
    sockets.push(socket);
    socket.on("session-status", (data) => seen.push({ status: data.status, at: performance.now() }));
    socket.on("connection-error", (data) => fail(`socket ${j}: connection-error ${JSON.stringify(data)}`));
    batch.push(
      new Promise((resolve, reject) => {
        socket.on("connect_error", (err) => reject(new Error(`socket ${j}: ${err.message}`)));
        socket.on("connect", () => socket.emit("authenticate", { token }));
        socket.on("authenticated", ({ success }) =>
          success ? socket.emit("subscribe-session", { instance_id: "admin" }) : reject(new Error("refused")),
        );
        socket.once("session-status", resolve);
      }),
    );
  }
  await Promise.all(batch).catch((e) => fail(e.message));
}
const connectMs = performance.now() - connectStart;
const rssSubscribed = rssMiB();

// Waits until every socket saw `status` after `since`; returns [first, last] arrival - since (ms).
const allSaw = async (status, since) => {
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    const times = arrivals.map((seen) => seen.find((s) => s.status === status && s.at >= since)?.at);
    if (times.every((t) => t !== undefined)) {
      return [Math.min(...times) - since, Math.max(...times) - since];
    }
    if (performance.now() > deadline) {
      const missing = times.filter((t) => t === undefined).length;
      fail(`${missing} of ${CLIENTS} sockets did not get \`${status}\` within ${WAIT_MS / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
};
const post = async (url, auth) => {
  const response = await fetch(url, { method: "POST", headers: auth ? { authorization: `Bearer ${token}` } : {} });
  if (!response.ok) fail(`POST ${url}: ${response.status} ${await response.text()}`);
};

const changes = [];
for (let round = 1; round <= ROUNDS; round++) {
  let since = performance.now();
  await post(`${hub}/api/admin/whatsapp/connect`, true);
  await allSaw("qr_required", since);
  since = performance.now();
  await post(`${sim}/__sim/scan`, false);
  const [scanFirst, scanLast] = await allSaw("connected", since);
  changes.push({ change: "scan -> connected", first: scanFirst, last: scanLast });
  since = performance.now();
  await post(`${sim}/__sim/logout`, false);
  const [outFirst, outLast] = await allSaw("disconnected", since);
  changes.push({ change: "logout -> disconnected", first: outFirst, last: outLast });
  console.error(`round ${round}: scan -> last connected ${scanLast.toFixed(1)} ms, logout -> last disconnected ${outLast.toFixed(1)} ms`);
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const lasts = changes.map((c) => c.last);
const spreads = changes.map((c) => c.last - c.first);
console.log(`clients subscribed            ${CLIENTS} (connected, authenticated, subscribed in ${(connectMs / 1000).toFixed(1)} s)`);
console.log(`state changes measured        ${changes.length} (${ROUNDS} x scan -> connected, ${ROUNDS} x logout -> disconnected)`);
console.log(`page change -> last client    p50 ${percentile(lasts, 50).toFixed(1)} ms   p99 ${percentile(lasts, 99).toFixed(1)} ms   max ${Math.max(...lasts).toFixed(1)} ms`);
console.log(`first -> last client spread   p50 ${percentile(spreads, 50).toFixed(1)} ms   p99 ${percentile(spreads, 99).toFixed(1)} ms`);
console.log(`hub RSS                       ${rssBefore} MiB before, ${rssSubscribed} MiB with ${CLIENTS} subscribed, ${rssMiB()} MiB at the end`);
for (const socket of sockets) socket.close();
process.exit(0);
