package redislock

import "github.com/redis/go-redis/v9"

// Redis keys of one lock (see keyNames):
//
//	<prefix>{<key>}           the Redlock key: the holder's random token, PX expiry
//	<prefix>{<key>}:state     hash, no expiry: fence (counter), ticket (counter),
//	                          token, holder, since, tfence (the last grant's)
//	<prefix>{<key>}:q         zset, waiting queue: waiter id -> ticket (queue master only)
//	<prefix>{<key>}:hb        zset, waiter id -> heartbeat deadline, ms (queue master only)
//	<prefix>{<key>}:released  pub/sub channel: a release that no queued waiter
//	                          was told of
//	<prefix>wake:<locker>     pub/sub channel of one Locker: "your turn" for
//	                          one of its waiters (the message is the waiter's
//	                          id), or "=<fence> <id>": the lock was handed to it
//
// Every script touches only the keys of one lock, which share a hash tag. A
// waiter's id, its member in the queue, is
// "<locker>.<token>.<claim ms>.<holder JSON>" (locker and token are base32,
// without dots): from it the scripts find its Locker's channel and can hand
// the lock over to it (see grant).

// queueLib is shared by the scripts that read or change the waiting queue.
// Every helper costs a closure on every call of a script, so the helpers
// that only free the lock are apart, in handoffLib.
// KEYS[3] is the queue, KEYS[4] the heartbeats; stale is the heartbeat
// lifetime in ms.
const queueLib = `
local now_ms = nil
local function clock()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end
local function purge()
  local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', clock(), 'LIMIT', 0, 64)
  if #stale > 0 then
    redis.call('ZREM', KEYS[3], unpack(stale))
    redis.call('ZREM', KEYS[4], unpack(stale))
  end
end
local function beat(w, stale)
  redis.call('ZADD', KEYS[4], clock() + stale, w)
  redis.call('PEXPIRE', KEYS[3], stale * 2)
  redis.call('PEXPIRE', KEYS[4], stale * 2)
end
-- enqueue puts waiter w in the queue, or keeps it there, and returns its
-- rank and ticket. A waiter that was queued before keeps its ticket (kept,
-- empty for none) even when its entry was purged because it did not beat in
-- time: a waiter starved of CPU for longer than the heartbeat lifetime comes
-- back to its place, not to the tail.
local function enqueue(w, stale, kept)
  local t = redis.call('ZSCORE', KEYS[3], w)
  if not t then
    t = kept
    if not t or t == '' then t = redis.call('HINCRBY', KEYS[2], 'ticket', 1) end
    redis.call('ZADD', KEYS[3], t, w)
  end
  beat(w, stale)
  return redis.call('ZRANK', KEYS[3], w), tostring(t)
end
local function head()
  if redis.call('EXISTS', KEYS[3]) == 0 then return '' end
  purge()
  local h = redis.call('ZRANGE', KEYS[3], 0, 0)
  return h[1] or ''
end
-- dequeue takes waiter w out of the queue and returns its ticket ('' when
-- it was not queued).
local function dequeue(w)
  local s = redis.call('ZSCORE', KEYS[3], w)
  if not s then return '' end
  redis.call('ZREM', KEYS[3], w)
  redis.call('ZREM', KEYS[4], w)
  return s
end
`

// handoffLib is shared by the scripts that free the lock: it hands the key
// to the next waiter or announces the release. It needs queueLib.
const handoffLib = `
-- grant hands the free lock to waiter h (a member as described above): it
-- takes h out of the queue, sets the lock key to h's token for h's claim
-- window only (a waiter that has gone away holds the others up no longer),
-- increments the fence and records the grant as the acquire script does,
-- and publishes "=<fence> <h>" on h's Locker channel. It returns the token,
-- or nil when h is not a waiter's member with a claim window of at least
-- 1 ms (nothing changed then).
local function grant(h, wakeprefix)
  local loc, tok, claim, hold = string.match(h, '^([^.]+)%.([^.]+)%.(%d+)%.(.*)$')
  if not loc or tonumber(claim) < 1 then return nil end
  redis.call('ZREM', KEYS[3], h)
  redis.call('ZREM', KEYS[4], h)
  redis.call('SET', KEYS[1], tok, 'PX', claim)
  local f = redis.call('HINCRBY', KEYS[2], 'fence', 1)
  redis.call('HSET', KEYS[2], 'token', tok, 'holder', hold, 'since', clock(), 'tfence', f)
  redis.call('PUBLISH', wakeprefix .. loc, '=' .. f .. ' ' .. h)
  return tok
end
-- turn wakes the head h of the queue, on its Locker's channel, or when
-- nobody is queued (h empty) the waiters of the key's channel.
local function turn(h, keychan, wakeprefix)
  if h ~= '' then
    redis.call('PUBLISH', wakeprefix .. string.match(h, '^[^.]*'), h)
  else
    redis.call('PUBLISH', keychan, '')
  end
end
-- handoff passes the free lock, on the queue master, to the head of the
-- queue and returns the head's member ('' for none). A head that is not a
-- waiter's member is only woken (see turn).
local function handoff(keychan, wakeprefix)
  local h = head()
  if h ~= '' and grant(h, wakeprefix) then return h end
  turn(h, keychan, wakeprefix)
  return ''
end
-- wake announces that the lock may be free: on the queue master to the head
-- of the queue alone (see turn); on the other masters a generic '~' on the
-- key's channel, which only waiters outside the queue act on.
local function wake(isq, keychan, wakeprefix)
  if isq then
    turn(head(), keychan, wakeprefix)
  else
    redis.call('PUBLISH', keychan, '~')
  end
end
`

// acquireScript is the per-master step of a Redlock attempt: SET NX PX of the
// token, and on success the per-master fence increment and holder record, in
// one round trip. On the queue master (gated) it first lets only the head of
// the waiting queue (or anyone when the queue is empty) try, and puts a
// refused waiter in the queue. A waiter whose token the key already holds
// (the lock was handed to it, or an earlier attempt's cleanup did not reach
// this master) has it: the key gets the full expiry, and the fence is the
// master's counter, which the hand-off incremented.
//
// KEYS: lock, state, q, hb.
// ARGV: token, expiry ms, waiter id (empty for none), gated '1'/'0', holder
// JSON, since (unix ms), stale ms, the waiter's ticket from an earlier
// attempt (empty for none).
// Returns {status, n, ticket}: status 1 acquired (n is this master's new
// fence counter, ticket the waiter's removed queue ticket or empty), 0 held
// by another, -1 refused by the queue (not the head); when refused or held,
// n is the waiter's rank in the queue (0 for the head) and ticket its
// ticket.
var acquireScript = redis.NewScript(queueLib + `
local w = ARGV[3]
local gated = ARGV[4] == '1'
local stale = tonumber(ARGV[7])
-- mine: the key holds this attempt's token already; looked up only when
-- the key is taken, so that a free key costs no GET.
local function mine()
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return nil end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local ticket = ''
  if gated then ticket = dequeue(w) end
  local f = tonumber(redis.call('HGET', KEYS[2], 'fence') or '0')
  if redis.call('HGET', KEYS[2], 'token') ~= ARGV[1] then
    redis.call('HSET', KEYS[2], 'token', ARGV[1], 'holder', ARGV[5], 'since', ARGV[6], 'tfence', f)
  end
  return {1, f, ticket}
end
if gated then
  local h = head()
  if h ~= '' and h ~= w then
    local r = mine()
    if r then return r end
    local rank, t = 1, ''
    if w ~= '' then rank, t = enqueue(w, stale, ARGV[8]) end
    return {-1, rank, t}
  end
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local ticket = ''
  if w ~= '' then ticket = dequeue(w) end
  local f = redis.call('HINCRBY', KEYS[2], 'fence', 1)
  redis.call('HSET', KEYS[2], 'token', ARGV[1], 'holder', ARGV[5], 'since', ARGV[6], 'tfence', f)
  return {1, f, ticket}
end
local r = mine()
if r then return r end
local rank, t = 0, ''
if gated and w ~= '' then rank, t = enqueue(w, stale, ARGV[8]) end
return {0, rank, t}
`)

// releaseScript deletes the lock key when it still holds the token (the
// semantics of Redsync's delete script: 1 deleted, 0 another token, -1
// gone). A release (hand off '1') then passes the free key on: on the queue
// master to the head of the queue (see handoff in handoffLib), on the other
// masters to the heir the queue master named, so that the next holder is
// told it holds the lock instead of being woken to try. The cleanup of a
// failed attempt (hand off '0') only announces the release (see wake), and
// a waiter whose failed attempt had removed it from the queue gets its
// ticket back.
//
// KEYS: lock, state, q, hb.
// ARGV: token, waiter id to restore (empty for none), its ticket, stale ms,
// key channel, queue master '1'/'0', wake channel prefix, hand off '1'/'0',
// heir (other masters: the member the queue master handed the key to, or
// empty).
// Returns {status, heir}: heir is the member the key was handed to, or
// empty.
var releaseScript = redis.NewScript(queueLib + handoffLib + `
if ARGV[2] ~= '' and ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
  beat(ARGV[2], tonumber(ARGV[4]))
end
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return {0, ''} end
local st = -1
if v then
  redis.call('DEL', KEYS[1])
  st = 1
end
local isq = ARGV[6] == '1'
if ARGV[8] == '1' then
  if isq then return {st, handoff(ARGV[5], ARGV[7])} end
  if ARGV[9] ~= '' and grant(ARGV[9], ARGV[7]) then return {st, ARGV[9]} end
end
if st == 1 then wake(isq, ARGV[5], ARGV[7]) end
return {st, ''}
`)

// forceScript deletes the lock key whatever it holds, announces it like
// releaseScript and returns what it found: {token, pttl ms, holder token,
// holder JSON, since, tfence}, empty strings for missing fields.
//
// KEYS: lock, state, q, hb.
// ARGV: key channel, queue master '1'/'0', wake channel prefix.
var forceScript = redis.NewScript(queueLib + handoffLib + `
local v = redis.call('GET', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
local st = redis.call('HMGET', KEYS[2], 'token', 'holder', 'since', 'tfence')
if v then redis.call('DEL', KEYS[1]) end
wake(ARGV[2] == '1', ARGV[1], ARGV[3])
return {v or '', ttl, st[1] or '', st[2] or '', st[3] or '', st[4] or ''}
`)

// leaveScript takes a waiter that gives up out of the queue, frees the key
// when it holds the waiter's token (the lock was handed to the waiter as it
// gave up) and, when the key is free, hands it to the new head.
//
// KEYS: lock, state, q, hb. ARGV: waiter id, wake channel prefix, the
// waiter's token, key channel.
var leaveScript = redis.NewScript(queueLib + handoffLib + `
local was = redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
local mine = redis.call('GET', KEYS[1]) == ARGV[3]
if mine then redis.call('DEL', KEYS[1]) end
if (was == 1 or mine) and redis.call('EXISTS', KEYS[1]) == 0 then
  handoff(ARGV[4], ARGV[2])
end
return was
`)

// raiseFenceScript raises this master's fence counter to at least ARGV[1] and
// records it as the fence of the grant whose token is ARGV[2].
//
// KEYS: state. Returns 1.
var raiseFenceScript = redis.NewScript(`
local f = tonumber(ARGV[1])
local c = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if c < f then redis.call('HSET', KEYS[1], 'fence', ARGV[1]) end
if redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'tfence', ARGV[1])
end
return 1
`)
