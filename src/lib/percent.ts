// Item names inside references (`entraclaw://S/A`) and grant specs (`S/A`) are percent-encoded, so a `/`,
// `*` or `%` in a name cannot be read as syntax, and what we print is one shell word.

/** `part` with everything but letters, digits and `-_.~` percent-encoded (UTF-8). */
export function percentEncode(part: string): string {
  // encodeURIComponent leaves !'()* raw: * is grant syntax and the others are special to the shell.
  return encodeURIComponent(part).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The `--grant` spec naming exactly one item, as `parseGrantSpec` reads it back. */
export function itemGrantSpec(service: string, account: string): string {
  return `${percentEncode(service)}/${percentEncode(account)}`;
}

/**
 * The narrowest `--grant` spec covering what was asked: the item, the service (every account), or
 * undefined when no service was named (a list of everything) or a name is only `*` (see grantable).
 */
export function grantSpecFor(q: { service?: string; account?: string }): string | undefined {
  if (q.service === undefined || !grantable(q)) return undefined;
  return q.account === undefined ? percentEncode(q.service) : itemGrantSpec(q.service, q.account);
}

/**
 * Whether a grant can name this service (and account) alone: in a grant `*` is every service or account,
 * so a name that is only `*` cannot be granted without granting all the others too.
 */
export function grantable(q: { service?: string; account?: string }): boolean {
  return q.service !== '*' && q.account !== '*';
}

/**
 * An item as messages name it: `SERVICE/ACCOUNT` with only `%` and `/` inside a name encoded, so the one
 * `/` between them is unambiguous while ordinary names read as typed.
 */
export function itemName(service: string, account: string): string {
  const part = (s: string) => s.replaceAll('%', '%25').replaceAll('/', '%2F');
  return `${part(service)}/${part(account)}`;
}
