/**
 * A set kept as one item, or several in an array that is replaced rather
 * than changed in place: most sets here hold one entry (a user's listener, a
 * subject wanted by one worker), and a walk keeps the members of its start
 * without a copy. Members are compared by identity.
 */
export type OneOrMany<T> = T | T[];

export function withMember<T>(members: OneOrMany<T>, member: T): OneOrMany<T> {
  if (!Array.isArray(members)) return members === member ? members : [members, member];
  return members.includes(member) ? members : [...members, member];
}

/** The members without this one; undefined when none is left. */
export function withoutMember<T>(members: OneOrMany<T>, member: T): OneOrMany<T> | undefined {
  if (!Array.isArray(members)) return members === member ? undefined : members;
  const rest = members.filter((m) => m !== member);
  return rest.length === members.length ? members : rest.length === 1 ? rest[0] : rest;
}

export function forEachMember<T>(members: OneOrMany<T>, call: (member: T) => void): void {
  if (!Array.isArray(members)) return call(members);
  for (const m of members) call(m);
}
