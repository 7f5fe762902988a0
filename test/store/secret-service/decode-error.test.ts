import { describe, expect, it } from 'vitest';
import { BusConnectionError, BusTimeoutError, DBusError } from '../../../src/store/secret-service/bus.js';
import { DecryptError } from '../../../src/store/secret-service/dh-session.js';
import { decodeError } from '../../../src/store/secret-service.js';

const op = { action: 'read', item: 'github/me' };
const dbus = (name: string, member = 'GetSecret') => new DBusError(name, member, 'text from the provider');

describe('secret-service decodeError', () => {
  it.each([
    [
      dbus('org.freedesktop.DBus.Error.ServiceUnknown', 'OpenSession'),
      'unavailable',
      /no Secret Service provider/,
    ],
    [dbus('org.freedesktop.DBus.Error.NameHasNoOwner'), 'unavailable', /no Secret Service provider/],
    [
      dbus('org.freedesktop.DBus.Error.NotSupported', 'OpenSession'),
      'unavailable',
      /refused the encrypted session \(dh-ietf1024/,
    ],
    [
      dbus('org.freedesktop.Secret.Error.IsLocked'),
      'locked',
      /github\/me is locked .*store "secret-service"/,
    ],
    [dbus('org.freedesktop.DBus.Error.UnknownMethod'), 'not_found', /github\/me disappeared/],
    [dbus('org.freedesktop.Secret.Error.NoSuchObject'), 'not_found', /disappeared/],
    [dbus('org.freedesktop.DBus.Error.NoReply'), 'unavailable', /did not answer GetSecret/],
    [dbus('org.example.Weird'), 'internal', /org\.example\.Weird/],
    [new BusTimeoutError('SearchItems', 3000), 'unavailable', /did not answer SearchItems within 3000 ms/],
    [new BusConnectionError('connect ENOENT /run/user/0/bus'), 'unavailable', /ENOENT/],
    [new DecryptError('bad padding'), 'corrupt', /github\/me .* did not decrypt/],
    [new TypeError('boom'), 'internal', /client failed to read$/],
  ])('%s -> %s', (err, code, message) => {
    const decoded = decodeError(err, op);
    expect(decoded.code).toBe(code);
    expect(decoded.message).toMatch(message);
    // NotFoundError takes no cause; every other mapping keeps the original error.
    if (code !== 'not_found') expect(decoded.cause).toBe(err);
  });

  it('NotSupported from anything but OpenSession is not reported as a refused session', () => {
    expect(decodeError(dbus('org.freedesktop.DBus.Error.NotSupported', 'SetSecret'), op).code).toBe(
      'internal',
    );
  });

  it('the locked hint says how to unlock and which store to pick instead', () => {
    expect(decodeError(dbus('org.freedesktop.Secret.Error.IsLocked'), op).hint).toMatch(
      /gnome-keyring-daemon --replace --unlock.*--store encrypted-file/,
    );
  });
});
