import { describe, expect, it } from 'vitest';
import { namespaceHint } from '../../src/sandbox/namespace-hint.js';

describe('namespaceHint', () => {
  it('names a user namespace limit of 0 first: nothing else matters then', () => {
    expect(namespaceHint({ maxUserNamespaces: '0', apparmorRestricts: '1', unprivilegedClone: '0' })).toMatch(
      /user\.max_user_namespaces is 0.*sysctl user\.max_user_namespaces=15000/,
    );
  });

  it("names Debian's old unprivileged_userns_clone switch when it is off", () => {
    expect(namespaceHint({ maxUserNamespaces: '15000', unprivilegedClone: '0' })).toMatch(
      /sysctl kernel\.unprivileged_userns_clone=1/,
    );
  });

  it("names Ubuntu's AppArmor restriction and both ways out", () => {
    const hint = namespaceHint({ maxUserNamespaces: '15000', apparmorRestricts: '1' });
    expect(hint).toMatch(/AppArmor/);
    expect(hint).toMatch(/sysctl kernel\.apparmor_restrict_unprivileged_userns=0/);
  });

  it('falls back to what bwrap needs when no setting explains it', () => {
    expect(
      namespaceHint({ maxUserNamespaces: '15000', apparmorRestricts: '0', unprivilegedClone: '1' }),
    ).toMatch(/needs user namespaces/);
    expect(namespaceHint({})).toMatch(/needs user namespaces/);
  });
});
