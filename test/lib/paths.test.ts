import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src/lib/paths.js';

describe('resolvePaths', () => {
  it('uses absolute XDG variables', () => {
    const p = resolvePaths(
      {
        HOME: '/h',
        XDG_CONFIG_HOME: '/c',
        XDG_DATA_HOME: '/d',
        XDG_STATE_HOME: '/s',
        XDG_RUNTIME_DIR: '/r',
      },
      'linux',
    );
    expect(p).toEqual({
      config: '/c/entraclaw',
      data: '/d/entraclaw',
      state: '/s/entraclaw',
      runtime: '/r/entraclaw',
    });
  });

  it('ignores relative ones, as the XDG spec says (a vault must not land wherever a command runs)', () => {
    const p = resolvePaths(
      { HOME: '/h', XDG_CONFIG_HOME: 'c', XDG_DATA_HOME: './d', XDG_STATE_HOME: 's/', XDG_RUNTIME_DIR: 'r' },
      'linux',
    );
    const uid = process.getuid?.() ?? 0;
    expect(p).toEqual({
      config: '/h/.config/entraclaw',
      data: '/h/.local/share/entraclaw',
      state: '/h/.local/state/entraclaw',
      runtime: `/tmp/entraclaw-${uid}/entraclaw`,
    });
    expect(resolvePaths({ HOME: '/h', XDG_CONFIG_HOME: 'c' }, 'darwin').config).toBe('/h/.config/entraclaw');
  });

  it('ignores a relative or empty HOME for the account home: a vault must not land wherever a command runs', () => {
    const home = userInfo().homedir;
    for (const HOME of ['relhome', './h', '']) {
      expect(resolvePaths({ HOME }, 'linux').data).toBe(`${home}/.local/share/entraclaw`);
      expect(resolvePaths({ HOME }, 'linux').config).toBe(`${home}/.config/entraclaw`);
    }
    expect(resolvePaths({ HOME: 'relhome' }, 'darwin').data).toBe(
      `${home}/Library/Application Support/entraclaw`,
    );
  });
});
