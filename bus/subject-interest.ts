/**
 * Members per bus subject, with one bus subscription per subject that has
 * any: taken with the first member, dropped with the last. The Fanout keeps
 * listeners this way and the worker bridge keeps worker processes. An entry
 * is a Map slot and one small object (the subscription and the members);
 * the bus handler is one for the whole table, passed in by the owner.
 */
import type { Bus, EventHandler, Subscription } from "./bus.js";
import { withMember, withoutMember, type OneOrMany } from "./one-or-many.js";

export interface SubjectInterest<T> {
  /** Adds member to subject, subscribing on the bus if it is the first. */
  add(subject: string, member: T): void;
  /** Removes member from subject, unsubscribing if it was the last. */
  remove(subject: string, member: T): void;
  /** The subject's members; undefined when it has none. */
  membersOf(subject: string): OneOrMany<T> | undefined;
  /** Subjects with at least one member. */
  subjects(): IterableIterator<string>;
  /** Subjects with at least one member, hence bus subscriptions held. */
  readonly size: number;
}

export function createSubjectInterest<T>(bus: Bus, handler: EventHandler): SubjectInterest<T> {
  const entries = new Map<string, { subscription: Subscription; members: OneOrMany<T> }>();
  return {
    add(subject, member) {
      const entry = entries.get(subject);
      if (entry) entry.members = withMember(entry.members, member);
      else entries.set(subject, { subscription: bus.subscribe(subject, handler), members: member });
    },
    remove(subject, member) {
      const entry = entries.get(subject);
      if (!entry) return;
      const rest = withoutMember(entry.members, member);
      if (rest !== undefined) {
        entry.members = rest;
        return;
      }
      entry.subscription.unsubscribe();
      entries.delete(subject);
    },
    membersOf: (subject) => entries.get(subject)?.members,
    subjects: () => entries.keys(),
    get size() {
      return entries.size;
    },
  };
}
