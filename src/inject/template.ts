import { EntraclawError, UsageError } from '../errors.js';
import { formatReference, parseReference, REFERENCE_SCHEME } from './reference.js';

// `{{ entraclaw://SERVICE/ACCOUNT }}` is replaced by the secret's bytes; spaces or tabs inside the braces
// are optional. Any other `{{` (Go, Helm, Jinja, Mustache templates) is left exactly as written, so
// Entraclaw can run over a file that another template engine will process later. A tag that starts
// like ours but is malformed or unterminated is an error, never passed through: a silently surviving
// reference would ship a config without its secret.

/** Fetches a secret's bytes; throws (ideally an EntraclawError) when it cannot. */
export type SecretResolver = (service: string, account: string) => Promise<Buffer>;

const OPENING = new RegExp(`\\{\\{[ \\t]*(?=${REFERENCE_SCHEME})`, 'g');
const TAG = /^\{\{[ \t]*(entraclaw:\/\/[^\s{}]*)[ \t]*\}\}/;

/**
 * Renders a template: every reference tag replaced by its secret (each distinct item resolved once).
 * `source` names the template in errors, e.g. its file name.
 */
export async function renderTemplate(
  template: string,
  resolve: SecretResolver,
  source = 'template',
): Promise<Buffer> {
  const parts: Buffer[] = [];
  const cache = new Map<string, Promise<Buffer>>();
  let done = 0;
  for (const open of template.matchAll(OPENING)) {
    const where = `${source}:${lineOf(template, open.index)}`;
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
    parts.push(Buffer.from(template.slice(done, open.index)), await withContext(pending, where, key));
    done = open.index + tag[0].length;
  }
  parts.push(Buffer.from(template.slice(done)));
  return Buffer.concat(parts);
}

async function withContext(pending: Promise<Buffer>, where: string, key: string): Promise<Buffer> {
  try {
    return await pending;
  } catch (err) {
    const code = err instanceof EntraclawError ? err.code : 'internal';
    const hint = err instanceof EntraclawError ? err.hint : undefined;
    const message = err instanceof Error ? err.message : String(err);
    throw new EntraclawError(code, `${where}: cannot resolve ${key}: ${message}`, hint, {
      cause: err,
    });
  }
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}
