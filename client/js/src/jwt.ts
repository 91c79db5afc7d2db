/**
 * The `exp` claim (Unix seconds) of a JWT, read without verifying it, or undefined when the token
 * is not a JWT or has no numeric exp.
 */
export function tokenExpiry(token: string): number | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const claims: unknown = JSON.parse(atob(b64));
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to refresh a token that expires at expMs (Unix milliseconds), from now: a fifth of its
 * remaining life before exp, but at most `margin` ms before it.
 */
export function refreshDelay(expMs: number, now: number, margin: number): number {
  const left = expMs - now;
  return Math.max(0, left - Math.min(margin, left / 5));
}
