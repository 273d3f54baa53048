/**
 * Versioned schema of the embedded store. Each entry moves the schema from
 * version index to index + 1 (PRAGMA user_version) and never changes once it
 * has shipped: add a new entry instead.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: users, channels, memberships, messages.
  `
  CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    email       TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
  );

  CREATE TABLE channels (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('group', 'direct')),
    name        TEXT    NOT NULL,
    visibility  TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    delivery    TEXT    NOT NULL CHECK (delivery IN ('persisted', 'fast', 'ephemeral')),
    topic       TEXT    NOT NULL,
    created_by  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Direct messages only: "<low user id>:<high user id>", one channel per pair.
    direct_key  TEXT    UNIQUE
  );
  -- Group channel names are unique; direct messages have no name.
  CREATE UNIQUE INDEX channels_group_name ON channels (name) WHERE kind = 'group';

  CREATE TABLE memberships (
    channel_id  INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'member')),
    is_star     INTEGER NOT NULL DEFAULT 0,
    is_favorite INTEGER NOT NULL DEFAULT 0,
    mute        INTEGER NOT NULL DEFAULT 0,
    preferences TEXT    NOT NULL DEFAULT '{}',
    joined_at   INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
  ) WITHOUT ROWID;
  CREATE INDEX memberships_by_user ON memberships (user_id, channel_id);

  -- Clustered by channel, then id: a history page is one contiguous range scan.
  CREATE TABLE messages (
    channel_id    INTEGER NOT NULL,
    id            INTEGER NOT NULL,
    sender_id     INTEGER NOT NULL,
    text          TEXT    NOT NULL,
    client_msg_id TEXT,
    PRIMARY KEY (channel_id, id)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX messages_idempotency
    ON messages (channel_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
  `,
  // 2: messages that change (threads, edits, deletes, reactions, pins) and each channel's change log.
  `
  -- 0 for a message that is not a reply.
  ALTER TABLE messages ADD COLUMN thread_root_id INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE messages ADD COLUMN also_to_channel INTEGER NOT NULL DEFAULT 0;
  -- JSON {"u": ["<user id>", ...], "c": true, "h": false}; NULL for none.
  ALTER TABLE messages ADD COLUMN mentions TEXT;
  ALTER TABLE messages ADD COLUMN edited_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE messages ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;
  -- A root's thread summary: replies that are not deleted.
  ALTER TABLE messages ADD COLUMN reply_count INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE messages ADD COLUMN latest_reply_id INTEGER NOT NULL DEFAULT 0;
  -- Comma-separated user ids, most recent first.
  ALTER TABLE messages ADD COLUMN recent_repliers TEXT NOT NULL DEFAULT '';
  -- JSON [{"e": emoji, "n": count, "u": ["<first user ids>"]}], kept with the
  -- reactions table in one transaction, so a page needs no join; NULL for none.
  ALTER TABLE messages ADD COLUMN reactions TEXT;
  ALTER TABLE messages ADD COLUMN pinned_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE messages ADD COLUMN pinned_by INTEGER NOT NULL DEFAULT 0;
  -- The seqs its append logged ("posted", then "thread_updated" for a reply),
  -- so that a redelivered append answers exactly as the first did.
  ALTER TABLE messages ADD COLUMN post_seqs TEXT NOT NULL DEFAULT '';
  -- Listed in the channel's history: not a reply (or one also sent to the
  -- channel), and not deleted (or a deleted root that still has replies).
  ALTER TABLE messages ADD COLUMN in_history INTEGER NOT NULL DEFAULT 1;
  CREATE INDEX messages_history ON messages (channel_id, id) WHERE in_history = 1;
  CREATE INDEX messages_thread ON messages (channel_id, thread_root_id, id) WHERE thread_root_id != 0;
  CREATE INDEX messages_pins ON messages (channel_id, pinned_at) WHERE pinned_at != 0;

  CREATE TABLE reactions (
    channel_id  INTEGER NOT NULL,
    message_id  INTEGER NOT NULL,
    emoji       TEXT    NOT NULL,
    user_id     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id, emoji, user_id)
  ) WITHOUT ROWID;
  CREATE INDEX reactions_by_user ON reactions (channel_id, user_id, message_id);

  -- Each channel's change log: seq 1, 2, 3, ... assigned in the transaction
  -- that makes the change, so the log order is the commit order.
  CREATE TABLE changes (
    channel_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    message_id  INTEGER NOT NULL,
    actor_id    INTEGER NOT NULL,
    emoji       TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (channel_id, seq)
  ) WITHOUT ROWID;

  -- The last seq of each channel's log, and of its last change that alters
  -- history pages already read (every kind but "posted").
  CREATE TABLE channel_heads (
    channel_id  INTEGER PRIMARY KEY,
    seq         INTEGER NOT NULL,
    history_rev INTEGER NOT NULL DEFAULT 0
  );
  `,
  // 3: a post writes one row fewer. The log's next seq is read from the log
  // itself (its last entry + 1, inside the IMMEDIATE transaction that writes
  // the entry), so channel_heads gives way to channel_revisions, which only
  // changes that alter history pages write; and the partial history index,
  // which the planner did not use (history pages scan the primary key and
  // skip replies), is dropped.
  `
  CREATE TABLE channel_revisions (
    channel_id  INTEGER PRIMARY KEY,
    history_rev INTEGER NOT NULL
  );
  INSERT INTO channel_revisions (channel_id, history_rev) SELECT channel_id, history_rev FROM channel_heads WHERE history_rev != 0;
  DROP TABLE channel_heads;
  DROP INDEX messages_history;
  `,
];
