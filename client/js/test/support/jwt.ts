// HS256 JWTs signed with node:crypto, as a backend would make them.
import { createHmac } from "node:crypto";

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** An HS256 JWT with claims, signed with secret. */
export function signJWT(claims: Record<string, unknown>, secret = "test-secret"): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

/** A token for sub that expires ttlSeconds from now. */
export function tokenFor(sub: string, ttlSeconds: number, secret?: string, extra: Record<string, unknown> = {}): string {
  return signJWT({ sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds, ...extra }, secret);
}
