// Run as a child process by timers.test.ts: connects to the server at argv[2] with a token,
// joins a doc, leaves a publish in flight, then disconnects. The process must then exit by
// itself: any timer or socket the client left behind would keep it alive.
import WebSocket from "ws";
import { PushdClient } from "../../src/index.js";
import { tokenFor } from "./jwt.js";

const client = new PushdClient({ url: process.argv[2]!, getToken: () => tokenFor("alice", 3600), WebSocket, window: null });
client.join("d1");
client.connect();
await client.whenConnected();
const inFlight = client.publish("d1", "e", 1).catch((e: { code: string }) => e.code);
client.disconnect();
console.log(`disconnected; publish ${await inFlight}`);
