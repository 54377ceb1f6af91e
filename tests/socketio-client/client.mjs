// One socket.io client, driven over stdin/stdout by the hub's end-to-end tests.
//
//   node client.mjs URL [websocket|polling]
//
// Connects to URL (path /socket.io/), then:
// - every line read on stdin is {"emit": EVENT, "data": PAYLOAD}: emitted as is;
// - every event received is printed on stdout as one JSON line {"event": NAME, "data": PAYLOAD},
//   and so are the client's own `connect`, `connect_error` and `disconnect` (with `data` the reason).
// It exits when stdin closes. A self-signed CA is trusted with NODE_EXTRA_CA_CERTS.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, transport = "websocket"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node client.mjs URL [websocket|polling]");
  process.exit(2);
}

const print = (event, data) => process.stdout.write(JSON.stringify({ event, data: data ?? null }) + "\n");

const socket = io(url, { transports: [transport], reconnection: false, forceNew: true, timeout: 10000 });
socket.on("connect", () => print("connect", { transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => print("connect_error", String(err && err.message)));
socket.on("disconnect", (reason) => print("disconnect", reason));
socket.onAny((event, data) => print(event, data));

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (e) {
    print("client_error", `stdin line is not JSON: ${e.message}`);
    return;
  }
  socket.emit(command.emit, command.data);
});
lines.on("close", () => {
  socket.close();
  process.exit(0);
});
