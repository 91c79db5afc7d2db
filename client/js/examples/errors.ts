import { PushdError, type PushdClient } from "@pushd/client";

// Publishes an edit to a doc's backends, joining the doc first when needed.
export async function publishEdit(client: PushdClient, doc: string, edit: unknown): Promise<void> {
  try {
    await client.publish(doc, "edit", edit);
  } catch (err) {
    if (!(err instanceof PushdError)) throw err;
    if (err.code === "not_joined") {
      await client.join(doc).ready;
      return client.publish(doc, "edit", edit);
    }
    // timeout, disconnected (it may or may not have gone out), rate_limited, closed, ...
    throw new Error(`edit not published (${err.code}): ${err.message}`);
  }
}

// Tells the user when the client gives up (kicked, origin refused, repeated auth failures).
export function watchForGiveUp(client: PushdClient, show: (text: string) => void): void {
  client.on("disconnect", (d) => {
    if (!d.willReconnect) show(`Disconnected from push updates (${d.code} ${d.reason})`);
  });
}
