/** Every change is published as a chat.v1.Event on the right subjects. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/chat/v1/event_pb.js";
import { startTestApi, Visibility, type TestApi } from "../support/api.js";

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi({ CHAT_SUBJECT_PREFIX: "acme.chat" });
});
afterAll(() => t.stop());

/** Records events per subject, for subjects added as ids become known. */
function recorder() {
  const bySubject = new Map<string, Event[]>();
  const subs: Array<{ unsubscribe(): void }> = [];
  return {
    watch(subject: string) {
      bySubject.set(subject, []);
      subs.push(t.api.bus.subscribe(subject, (e) => bySubject.get(subject)!.push(e)));
    },
    kinds(subject: string) {
      return (bySubject.get(subject) ?? []).map((e) => e.payload.case);
    },
    events(subject: string) {
      return bySubject.get(subject) ?? [];
    },
    stop() {
      subs.forEach((s) => s.unsubscribe());
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe("events", () => {
  it("uses subjects under the configured prefix", () => {
    expect(t.api.subjects.channel(5n)).toBe("acme.chat.ch.5");
    expect(t.api.subjects.user(6n)).toBe("acme.chat.user.6");
  });

  it("publishes channel and membership changes to the channel and to the users concerned", async () => {
    const a = await t.newUser();
    const b = await t.newUser();
    const rec = recorder();
    rec.watch(t.api.subjects.user(a.id));
    rec.watch(t.api.subjects.user(b.id));

    const { channel } = await a.channels.createChannel({ name: `ev-${Date.now()}`, visibility: Visibility.PRIVATE });
    const ch = t.api.subjects.channel(channel!.id);
    rec.watch(ch);
    await a.channels.addMember({ channelId: channel!.id, userId: b.id });
    await a.channels.updateChannel({ channelId: channel!.id, topic: "launch" });
    const { message } = await b.messages.postMessage({ channelId: channel!.id, text: "hello" });
    await b.channels.updateMembership({ channelId: channel!.id, mute: true });
    await a.channels.removeMember({ channelId: channel!.id, userId: b.id });
    await tick();

    expect(rec.kinds(t.api.subjects.user(a.id))).toEqual(["channelCreated", "memberJoined"]);
    expect(rec.kinds(t.api.subjects.user(b.id))).toEqual(["memberJoined", "membershipUpdated", "memberLeft"]);
    expect(rec.kinds(ch)).toEqual(["memberJoined", "channelUpdated", "messagePosted", "memberLeft"]);

    const [joined, updated, posted, left] = rec.events(ch);
    expect(joined!.channelId).toBe(channel!.id);
    expect(joined!.payload.case === "memberJoined" && joined!.payload.value).toMatchObject({ byUserId: a.id, membership: { userId: b.id } });
    expect(updated!.payload.case === "channelUpdated" && updated!.payload.value.channel?.topic).toBe("launch");
    expect(posted!.payload.case === "messagePosted" && posted!.payload.value.message).toEqual(message);
    expect(left!.payload.case === "memberLeft" && left!.payload.value).toMatchObject({ userId: b.id, byUserId: a.id });
    expect(posted!.at).toBeDefined();
    rec.stop();
  });

  it("tells both users when a direct message is opened, once", async () => {
    const a = await t.newUser();
    const b = await t.newUser();
    const rec = recorder();
    rec.watch(t.api.subjects.user(a.id));
    rec.watch(t.api.subjects.user(b.id));
    await Promise.all([a.channels.openDirectMessage({ userId: b.id }), b.channels.openDirectMessage({ userId: a.id })]);
    await a.channels.openDirectMessage({ userId: b.id });
    await tick();
    expect(rec.kinds(t.api.subjects.user(a.id))).toEqual(["directMessageOpened"]);
    expect(rec.kinds(t.api.subjects.user(b.id))).toEqual(["directMessageOpened"]);
    rec.stop();
  });

  it("publishes nothing for rejected requests or idempotent replays", async () => {
    const a = await t.newUser();
    const { channel } = await a.channels.createChannel({ name: `quiet-${Date.now()}` });
    const rec = recorder();
    const ch = t.api.subjects.channel(channel!.id);
    rec.watch(ch);
    await a.messages.postMessage({ channelId: channel!.id, text: "one", clientMsgId: "k" });
    await a.messages.postMessage({ channelId: channel!.id, text: "one", clientMsgId: "k" });
    await a.messages.postMessage({ channelId: channel!.id, text: "" }).catch(() => undefined);
    await a.channels.joinChannel({ channelId: channel!.id });
    await tick();
    expect(rec.kinds(ch)).toEqual(["messagePosted"]);
    rec.stop();
  });
});
