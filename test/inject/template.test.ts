import { describe, expect, it } from 'vitest';
import { EntraclawError, NotFoundError, UsageError } from '../../src/errors.js';
import { renderTemplate, type SecretResolver } from '../../src/inject/template.js';

const secrets: Record<string, Buffer> = {
  'db/user': Buffer.from('admin'),
  'db/pass word': Buffer.from('p@ss'),
  'bin/key': Buffer.from([0x00, 0xff, 0x0a]),
};

function resolver(calls: string[] = []): SecretResolver {
  return async (service, account) => {
    calls.push(`${service}/${account}`);
    const value = secrets[`${service}/${account}`];
    if (!value)
      throw new NotFoundError(`no item ${service}/${account}`, 'create it with `entraclaw secret set`');
    return value;
  };
}

describe('renderTemplate', () => {
  it('replaces tags with and without spaces inside the braces', async () => {
    const out = await renderTemplate(
      'user={{entraclaw://db/user}} pass={{ entraclaw://db/pass%20word }} tab={{\tentraclaw://db/user\t}}',
      resolver(),
    );
    expect(out.toString()).toBe('user=admin pass=p@ss tab=admin');
  });

  it('leaves other template syntax alone', async () => {
    const text = 'a {{ .Values.x }} b {{name}} c {{ https://x/y }} d {{ entraclaw://db/user }} {{';
    expect((await renderTemplate(text, resolver())).toString()).toBe(
      'a {{ .Values.x }} b {{name}} c {{ https://x/y }} d admin {{',
    );
  });

  it('reports each reference left outside a tag, by line, and copies it as text', async () => {
    const where: string[] = [];
    const text =
      'a: entraclaw://db/user\nb: {{ entraclaw://db/user }} {{entraclaw://db/user}}\nc: {{- entraclaw://db/user -}}\n# ENTRACLAW://x/y\n';
    const out = await renderTemplate(text, resolver(), 'app.tmpl', (w) => where.push(w));
    expect(out.toString()).toBe(
      'a: entraclaw://db/user\nb: admin admin\nc: {{- entraclaw://db/user -}}\n# ENTRACLAW://x/y\n',
    );
    expect(where).toEqual(['app.tmpl:1', 'app.tmpl:3', 'app.tmpl:4']);
  });

  it('keeps binary secrets byte for byte', async () => {
    const out = await renderTemplate('[{{ entraclaw://bin/key }}]', resolver());
    expect(out).toEqual(Buffer.from([0x5b, 0x00, 0xff, 0x0a, 0x5d]));
  });

  it('resolves each distinct item once', async () => {
    const calls: string[] = [];
    await renderTemplate(
      '{{ entraclaw://db/user }}{{entraclaw://%64b/user}}\n{{ entraclaw://db/pass%20word }}',
      resolver(calls),
    );
    expect(calls).toEqual(['db/user', 'db/pass word']);
  });

  // A template as large as inject takes (4 MiB), a tag on every line: the lines named far down are right.
  // (Counting each tag's line from the top again made this one quadratic: minutes.)
  it('renders a 4 MiB template with a tag on each of its lines, and names the line of one far down', async () => {
    const line = 'k={{ entraclaw://db/user }} entraclaw://x/y\n';
    const lines = Math.floor((4 * 1024 * 1024) / line.length);
    const bare: string[] = [];
    const out = await renderTemplate(Buffer.from(line.repeat(lines)), resolver(), 't', (w) => bare.push(w));
    expect(out.length).toBe(lines * 'k=admin entraclaw://x/y\n'.length);
    expect(bare).toHaveLength(lines);
    expect(bare.at(-1)).toBe(`t:${lines}`);
    const err = await renderTemplate(
      `${line.repeat(lines)}{{ entraclaw://db/missing }}`,
      resolver(),
      't',
    ).catch((e: EntraclawError) => e);
    expect((err as EntraclawError).message).toMatch(new RegExp(`^t:${lines + 1}: `));
  });

  it('returns text without tags unchanged', async () => {
    expect((await renderTemplate('héllo\n', resolver())).toString()).toBe('héllo\n');
  });

  it('names the reference and line when a secret cannot be resolved, keeping the code and hint', async () => {
    const err = await renderTemplate(
      'a\nb\nx={{ entraclaw://db/missing }}',
      resolver(),
      'app.conf.tmpl',
    ).catch((e) => e);
    expect(err).toBeInstanceOf(EntraclawError);
    expect(err.code).toBe('not_found');
    expect(err.message).toBe('app.conf.tmpl:3: cannot resolve entraclaw://db/missing: no item db/missing');
    expect(err.hint).toContain('entraclaw secret set');
    expect(err.cause).toBeInstanceOf(NotFoundError);
  });

  it('maps a resolver failure that is not an EntraclawError to internal', async () => {
    const err = await renderTemplate('{{ entraclaw://a/b }}', async () => {
      throw new Error('socket closed');
    }).catch((e) => e);
    expect(err.code).toBe('internal');
    expect(err.message).toBe('template:1: cannot resolve entraclaw://a/b: socket closed');
  });

  it.each([
    ['{{ entraclaw://db/user', 'unterminated'],
    ['{{ entraclaw://db/user extra }}', 'trailing words'],
    ['{{ entraclaw://db/user}', 'one closing brace'],
  ])('rejects %j (%s) with its line', async (tag) => {
    const err = await renderTemplate(`ok\n${tag}`, resolver(), 't').catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/^t:2: "\{\{ entraclaw:\/\/" is not followed by a reference/);
  });

  it('rejects a malformed reference with its line', async () => {
    const err = await renderTemplate('\n\n{{ entraclaw://a/b/c }}', resolver(), 't').catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/^t:3: the reference has 3 parts; it must have exactly two/);
  });
});
