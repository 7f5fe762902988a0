/**
 * The fields of a /proc/<pid>/stat line from field 3 (state) on, so field N is at index N - 3. The
 * command name (field 2) may itself hold ") " and spaces, so the split starts after its last ")".
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
