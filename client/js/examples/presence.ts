import type { PresenceMember, PushdClient } from "@pushd/client";

// Keeps the list of who is in a doc: the join asks for join and leave events, the member pages
// are applied, then the events (by session ID, so an event the pages already showed changes nothing).
export async function whoIsHere(client: PushdClient, doc: string, show: (members: PresenceMember[]) => void) {
  const here = new Map<string, PresenceMember>();
  const sub = client.join(doc, { presence: true });
  const pending: (() => void)[] = [];
  let loaded = false;
  const apply = (change: () => void) => (loaded ? (change(), show([...here.values()])) : pending.push(change));
  sub.on("presence_join", (m) => apply(() => here.set(m.sid, m)));
  sub.on("presence_leave", (m) => apply(() => here.delete(m.sid)));
  await sub.ready;
  for (const m of await sub.members()) here.set(m.sid, m); // every page (sub.presence() reads one)
  loaded = true;
  for (const change of pending.splice(0)) change();
  show([...here.values()]);
  return sub;
}
