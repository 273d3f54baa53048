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
];
