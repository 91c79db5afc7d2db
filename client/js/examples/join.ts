import type { PushdClient, Subscription } from "@pushd/client";

// Follows a doc: every edit pushed to it, and a refetch whenever pushes may have been missed.
export function followDoc(client: PushdClient, doc: string, refetch: () => void, onEdit: (edit: unknown) => void): Subscription {
  const sub = client.join(doc);
  sub.on("subscribed", (e) => {
    if (e.gap) refetch(); // reconnected without a full replay: reload the doc's state
  });
  sub.on("push", (push) => {
    if (push.event === "edit") onEdit(push.data);
  });
  sub.on("error", (err) => console.error(`cannot follow ${doc}: ${err.code}`));
  return sub;
}
