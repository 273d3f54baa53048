/**
 * Keeps one node's events of a channel in id order when durable writes finish
 * out of order (Cassandra writes complete independently; SQLite's group
 * commit happens to finish in order). A post reserves its slot when it takes
 * its id; its event is published once every earlier slot of the channel has
 * published or been skipped.
 */
interface Slot {
  ready: boolean;
  publish: (() => Promise<void>) | undefined;
  done: () => void;
}

export class PublishOrder {
  private readonly channels = new Map<bigint, Slot[]>();

  /** Call right after taking the id, before anything else can take one. */
  reserve(channelId: bigint): Slot {
    let queue = this.channels.get(channelId);
    if (!queue) this.channels.set(channelId, (queue = []));
    const slot: Slot = { ready: false, publish: undefined, done: () => {} };
    queue.push(slot);
    return slot;
  }

  /** Publishes in turn; resolves once this slot's event was handed to the bus. */
  publish(channelId: bigint, slot: Slot, publish: () => Promise<void>): Promise<void> {
    const published = new Promise<void>((resolve) => (slot.done = resolve));
    slot.publish = publish;
    slot.ready = true;
    this.drain(channelId);
    return published;
  }

  /** The post will not publish (failed, or answered with an original): let later ones go. */
  skip(channelId: bigint, slot: Slot): void {
    slot.ready = true;
    this.drain(channelId);
  }

  private drain(channelId: bigint): void {
    const queue = this.channels.get(channelId);
    if (!queue) return;
    while (queue.length > 0 && queue[0]!.ready) {
      const slot = queue.shift()!;
      // Each publish hands its event to the bus synchronously, so calling them
      // in order publishes in order; its completion only settles the caller.
      if (slot.publish) slot.publish().then(slot.done, slot.done);
    }
    if (queue.length === 0) this.channels.delete(channelId);
  }
}
