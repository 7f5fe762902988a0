// The macOS `security` command table, from Apple's SecurityTool source (security.c, `commands[]`,
// apple-oss-distributions Security, macOS 13-15). The real tool matches a command by PREFIX against
// this table in order, so `find` means find-generic-password but `delete` means delete-keychain. We
// keep every real name so an abbreviation resolves to the command the real tool would run, and then
// refuse the ones the shim does not implement rather than run a different one.

/** Every command name of the real tool, in its table order (which decides prefix matches). */
export const SECURITY_COMMAND_NAMES: readonly string[] = [
  'help',
  'list-keychains',
  'list-smartcards',
  'default-keychain',
  'login-keychain',
  'create-keychain',
  'delete-keychain',
  'lock-keychain',
  'unlock-keychain',
  'set-keychain-settings',
  'set-keychain-password',
  'show-keychain-info',
  'dump-keychain',
  'create-keypair',
  'add-generic-password',
  'add-internet-password',
  'add-certificates',
  'find-generic-password',
  'delete-generic-password',
  'set-generic-password-partition-list',
  'find-internet-password',
  'delete-internet-password',
  'set-internet-password-partition-list',
  'find-key',
  'set-key-partition-list',
  'find-certificate',
  'find-identity',
  'delete-certificate',
  'delete-identity',
  'set-identity-preference',
  'get-identity-preference',
  'create-db',
  'export',
  'import',
  'export-smartcard',
  'cms',
  'install-mds',
  'add-trusted-cert',
  'remove-trusted-cert',
  'dump-trust-settings',
  'user-trust-settings-enable',
  'trust-settings-export',
  'trust-settings-import',
  'verify-cert',
  'authorize',
  'authorizationdb',
  'execute-with-privileges',
  'leaks',
  'error',
  'create-filevaultmaster-keychain',
  'smartcards',
  'translocate-create',
  'translocate-policy-check',
  'translocate-status-check',
  'translocate-original-path',
  'requirement-evaluate',
];

const ADD_NOTES =
  '\n' +
  'By default, the application which creates an item is trusted to access its data without warning.\n' +
  'You can remove this default access by explicitly specifying an empty app pathname: -T ""\n' +
  'If no keychain is specified, the password is added to the default keychain.\n' +
  'Use of the -p or -w options is insecure. Specify -w as the last option to be prompted.\n';
const SEARCH_LIST = 'If no keychains are specified to search, the default search list is used.';
/** The match options find- and delete-generic-password share, as the real tool lists them. */
const GENERIC_MATCH =
  '    -a  Match "account" string\n' +
  '    -c  Match "creator" (four-character code)\n' +
  '    -C  Match "type" (four-character code)\n' +
  '    -D  Match "kind" string\n' +
  '    -G  Match "value" string (generic attribute)\n' +
  '    -j  Match "comment" string\n' +
  '    -l  Match "label" string\n' +
  '    -s  Match "service" string\n';
/** The match options find- and delete-internet-password share, as the real tool lists them. */
const INTERNET_MATCH =
  '    -a  Match "account" string\n' +
  '    -c  Match "creator" (four-character code)\n' +
  '    -C  Match "type" (four-character code)\n' +
  '    -d  Match "securityDomain" string\n' +
  '    -D  Match "kind" string\n' +
  '    -j  Match "comment" string\n' +
  '    -l  Match "label" string\n' +
  '    -p  Match "path" string\n' +
  '    -P  Match port number\n' +
  '    -r  Match "protocol" (four-character code)\n' +
  '    -s  Match "server" string\n' +
  '    -t  Match "authenticationType" (four-character code)\n';

/** Usage (options) and help (one-line description) of each command the shim implements, verbatim. */
export const SECURITY_USAGE: Readonly<Record<string, { usage: string; help: string }>> = {
  help: { usage: '[command ...]', help: 'Show all commands, or show usage for a command.' },
  'show-keychain-info': { usage: '[keychain]', help: 'Show the settings for keychain.' },
  'add-generic-password': {
    usage:
      '[-a account] [-s service] [-w password] [options...] [-A|-T appPath] [keychain]\n' +
      '    -a  Specify account name (required)\n' +
      '    -c  Specify item creator (optional four-character code)\n' +
      '    -C  Specify item type (optional four-character code)\n' +
      '    -D  Specify kind (default is "application password")\n' +
      '    -G  Specify generic attribute (optional)\n' +
      '    -j  Specify comment string (optional)\n' +
      '    -l  Specify label (if omitted, service name is used as default label)\n' +
      '    -s  Specify service name (required)\n' +
      '    -p  Specify password to be added (legacy option, equivalent to -w)\n' +
      '    -w  Specify password to be added\n' +
      '    -X  Specify password data to be added as a hexadecimal string\n' +
      '    -A  Allow any application to access this item without warning (insecure, not recommended!)\n' +
      '    -T  Specify an application which may access this item (multiple -T options are allowed)\n' +
      '    -U  Update item if it already exists (if omitted, the item cannot already exist)\n' +
      ADD_NOTES,
    help: 'Add a generic password item.',
  },
  'add-internet-password': {
    usage:
      '[-a account] [-s server] [-w password] [options...] [-A|-T appPath] [keychain]\n' +
      '    -a  Specify account name (required)\n' +
      '    -c  Specify item creator (optional four-character code)\n' +
      '    -C  Specify item type (optional four-character code)\n' +
      '    -d  Specify security domain string (optional)\n' +
      '    -D  Specify kind (default is "Internet password")\n' +
      '    -j  Specify comment string (optional)\n' +
      '    -l  Specify label (if omitted, server name is used as default label)\n' +
      '    -p  Specify path string (optional)\n' +
      '    -P  Specify port number (optional)\n' +
      '    -r  Specify protocol (optional four-character SecProtocolType, e.g. "http", "ftp ")\n' +
      '    -s  Specify server name (required)\n' +
      '    -t  Specify authentication type (as a four-character SecAuthenticationType, default is "dflt")\n' +
      '    -w  Specify password to be added\n' +
      '    -X  Specify password data to be added as a hexadecimal string\n' +
      '    -A  Allow any application to access this item without warning (insecure, not recommended!)\n' +
      '    -T  Specify an application which may access this item (multiple -T options are allowed)\n' +
      '    -U  Update item if it already exists (if omitted, the item cannot already exist)\n' +
      ADD_NOTES,
    help: 'Add an internet password item.',
  },
  'find-generic-password': {
    usage:
      '[-a account] [-s service] [options...] [-g] [keychain...]\n' +
      GENERIC_MATCH +
      '    -g  Display the password for the item found\n' +
      '    -w  Display only the password on stdout\n' +
      SEARCH_LIST,
    help: 'Find a generic password item.',
  },
  'delete-generic-password': {
    usage: `[-a account] [-s service] [options...] [keychain...]\n${GENERIC_MATCH}${SEARCH_LIST}`,
    help: 'Delete a generic password item.',
  },
  'find-internet-password': {
    usage:
      '[-a account] [-s server] [options...] [-g] [keychain...]\n' +
      INTERNET_MATCH +
      '    -g  Display the password for the item found\n' +
      '    -w  Display only the password on stdout\n' +
      SEARCH_LIST,
    help: 'Find an internet password item.',
  },
  'delete-internet-password': {
    usage: `[-a account] [-s server] [options...] [keychain...]\n${INTERNET_MATCH}${SEARCH_LIST}`,
    help: 'Delete an internet password item.',
  },
};

/** The real command a (possibly abbreviated) name selects, by first prefix match; undefined if none. */
export function resolveSecurityCommand(word: string): string | undefined {
  return SECURITY_COMMAND_NAMES.find((name) => name.startsWith(word));
}
