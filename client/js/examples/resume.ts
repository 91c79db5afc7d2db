import { PushdClient } from "@pushd/client";
import WebSocket from "ws";

// Keeps resume cursors across page loads (localStorage in a browser), so the server replays what
// was published while the page was closed, as far back as its history reaches.
export function resumable(url: string, getToken: () => Promise<string>, storage: Pick<Storage, "getItem" | "setItem">, doc: string) {
  const client = new PushdClient({ url, getToken, WebSocket, since: storage.getItem("pushd:user") ?? undefined });
  const sub = client.join(doc, { since: storage.getItem(`pushd:doc:${doc}`) ?? undefined });
  const save = () => {
    if (client.cursor) storage.setItem("pushd:user", client.cursor);
    if (sub.cursor) storage.setItem(`pushd:doc:${doc}`, sub.cursor);
  };
  client.on("push", save);
  sub.on("subscribed", (e) => {
    save();
    if (e.gap) console.log(`${doc}: history did not reach back; refetch it`);
  });
  client.connect();
  return { client, sub };
}
