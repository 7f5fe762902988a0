import { EntraclawError, UsageError } from '../errors.js';
import { formatReference, MISTYPED_SCHEME, parseReference, REFERENCE_SCHEME } from './reference.js';

// `{{ entraclaw://SERVICE/ACCOUNT }}` is replaced by the secret's bytes; whitespace inside the braces
// is optional. Any other `{{` (Go, Helm, Jinja, Mustache templates) is left exactly as written, so
// Entraclaw can run over a file that another template engine will process later. A tag that starts
// like ours but is malformed or unterminated is an error, never passed through: a silently surviving
// reference would ship a config without its secret.

/** Fetches a secret's bytes; throws (ideally an EntraclawError) when it cannot. */
export type SecretResolver = (service: string, account: string) => Promise<Buffer>;

// Whitespace inside the braces may include line breaks: a tag split over lines is still ours, never text.
// The scheme is matched whatever its case, so `{{ ENTRACLAW://... }}` is refused (as `run` refuses such a
// variable), not left in the output as text where a secret should be; so is one a slash short of it
// (`{{ entraclaw:/svc/me }}`, MISTYPED_SCHEME). Other `{{ entraclaw:...` are left as text.
const OPENING = /\{\{\s*(?=entraclaw(?::|\/\/))/gi;
const ANY_TAG = /^\{\{\s*([^\s{}]*)\s*\}\}/;
const TAG = /^\{\{\s*(entraclaw:\/\/[^\s{}]*)\s*\}\}/;
// The scheme anywhere, to find references left outside a tag.
const SCHEME = new RegExp(REFERENCE_SCHEME, 'gi');

/**
 * Renders a template: every reference tag replaced by its secret (each distinct item resolved once).
 * `source` names the template in errors, e.g. its file name. A Buffer template is rendered byte for byte:
 * text outside the tags is copied unchanged even when it is not UTF-8 (tags themselves are ASCII).
 * A reference outside a tag (`token: entraclaw://...`, as `op inject` would resolve it, or inside another
 * engine's `{{- ... -}}`) stays text; `onBareReference` is told where, so the user can hear of it.
 */
export async function renderTemplate(
  input: string | Buffer,
  resolve: SecretResolver,
  source = 'template',
  onBareReference?: (where: string) => void,
): Promise<Buffer> {
  // latin1 maps each byte to one code unit and back, so a Buffer survives the round trip exactly.
  const encoding: BufferEncoding = typeof input === 'string' ? 'utf8' : 'latin1';
  const template = typeof input === 'string' ? input : input.toString('latin1');
  const parts: Buffer[] = [];
  const cache = new Map<string, Promise<Buffer>>();
  let done = 0;
  const tags: Array<[number, number]> = [];
  const tagLine = lineCounter(template);
  for (const open of template.matchAll(OPENING)) {
    const where = `${source}:${tagLine(open.index)}`;
    const scheme = template.slice(
      open.index + open[0].length,
      open.index + open[0].length + REFERENCE_SCHEME.length,
    );
    if (scheme.toLowerCase() !== REFERENCE_SCHEME) {
      const inner = ANY_TAG.exec(template.slice(open.index))?.[1];
      if (inner === undefined || !MISTYPED_SCHEME.test(inner)) continue;
      throw new UsageError(
        `${where}: a reference starts with ${REFERENCE_SCHEME} (a colon and two slashes); copied as written, the output would hold the text`,
        `write {{ ${REFERENCE_SCHEME}SERVICE/ACCOUNT }}`,
      );
    }
    if (scheme !== REFERENCE_SCHEME) {
      throw new UsageError(
        `${where}: a reference's scheme is written in lower case`,
        `write {{ ${REFERENCE_SCHEME}SERVICE/ACCOUNT }}`,
      );
    }
    const tag = TAG.exec(template.slice(open.index));
    if (!tag) {
      throw new UsageError(
        `${where}: "{{ ${REFERENCE_SCHEME}" is not followed by a reference and "}}"`,
        `write {{ ${REFERENCE_SCHEME}SERVICE/ACCOUNT }}`,
      );
    }
    const ref = parseReference(tag[1] as string, where);
    const key = formatReference(ref);
    let pending = cache.get(key);
    if (!pending) {
      pending = resolve(ref.service, ref.account);
      cache.set(key, pending);
    }
    parts.push(
      Buffer.from(template.slice(done, open.index), encoding),
      await withContext(pending, where, key),
    );
    done = open.index + tag[0].length;
    tags.push([open.index, done]);
  }
  parts.push(Buffer.from(template.slice(done), encoding));
  if (onBareReference) {
    let t = 0; // tags and matches both come in order
    const bareLine = lineCounter(template);
    for (const m of template.matchAll(SCHEME)) {
      while (t < tags.length && (tags[t] as [number, number])[1] <= m.index) t++;
      const tag = tags[t];
      if (!tag || m.index < tag[0]) onBareReference(`${source}:${bareLine(m.index)}`);
    }
  }
  return Buffer.concat(parts);
}

async function withContext(pending: Promise<Buffer>, where: string, key: string): Promise<Buffer> {
  try {
    return await pending;
  } catch (err) {
    const code = err instanceof EntraclawError ? err.code : 'internal';
    const hint = err instanceof EntraclawError ? err.hint : undefined;
    const message = err instanceof Error ? err.message : String(err);
    // A resolver that names the reference itself gets only the place added, so it is named once.
    const what = message.includes(key) ? '' : `cannot resolve ${key}: `;
    throw new EntraclawError(code, `${where}: ${what}${message}`, hint, {
      cause: err,
    });
  }
}

/**
 * The 1-based line of an index, for indexes asked in increasing order: each call counts only the line
 * breaks since the previous one, so a template with a tag on each of its many lines stays linear.
 */
function lineCounter(text: string): (index: number) => number {
  let line = 1;
  let from = 0;
  return (index) => {
    for (let i = text.indexOf('\n', from); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
    from = Math.max(from, index);
    return line;
  };
}
