"""The queue's Lua scripts: every state change that reads before it writes runs as
one script, so two workers (or a worker and a cancel) never interleave inside one."""

from __future__ import annotations

from service.jobs import constants as C
from service.jobs.schema import TERMINAL_STATES

# Shared helpers, prepended to the scripts that need them.
_TERMINAL_TEST = " or ".join(f"state == '{s.value}'" for s in sorted(TERMINAL_STATES))
_LUA_PRELUDE = f"""
local function is_terminal(state)
  return {_TERMINAL_TEST}
end
-- Ends a job: final state, the TTL on its hash, its stream entry acked, its cancel flag gone.
local function finish(job, cancel, stream, group, state, now, ttl)
  redis.call('HSET', job, 'state', state, 'updated_at', now, 'finished_at', now,
             'retry_at', '', 'eta_s', '')
  redis.call('EXPIRE', job, ttl)
  redis.call('DEL', cancel)
  local entry = redis.call('HGET', job, 'entry_id')
  if entry and entry ~= '' then redis.call('XACK', stream, group, entry) end
end
-- Nil when `consumer` ('' for anyone) may act on the job, else why not. A pending cancel
-- request is carried out here when honour_cancel is set.
local function check(job, cancel, stream, group, consumer, now, ttl, honour_cancel)
  local state = redis.call('HGET', job, 'state')
  if not state then return 'gone' end
  if state == 'cancelled' then return 'cancelled' end
  if is_terminal(state) then return 'lost' end
  if consumer ~= '' and redis.call('HGET', job, 'worker') ~= consumer then return 'lost' end
  if honour_cancel and redis.call('EXISTS', cancel) == 1 then
    finish(job, cancel, stream, group, 'cancelled', now, ttl)
    return 'cancelled'
  end
  return nil
end
"""

# KEYS: job, stream[, idempotency]. ARGV: job id, ttl, maxlen, job key prefix, hash fields...
SUBMIT = f"""
if #KEYS == 3 then
  local existing = redis.call('GET', KEYS[3])
  -- The hash outlives the key unless someone deleted it by hand: then submit afresh. A job
  -- that failed or was cancelled is no answer to give again: the repeat runs anew.
  if existing then
    local state = redis.call('HGET', ARGV[4] .. existing, 'state')
    if state and state ~= 'failed' and state ~= 'cancelled' then return {{existing, 0}} end
  end
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {{'', -1}} end
local entry = redis.call('XADD', KEYS[2], '*', '{C.STREAM_FIELD_JOB}', ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HSET', KEYS[1], 'entry_id', entry)
if #KEYS == 3 then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2]) end
return {{ARGV[1], 1}}
"""

# KEYS: stream, owner's heartbeat, job. ARGV: group, consumer, entry id, min idle ms, now,
# orphan (1: the consumer's own entry, and it holds no claim). Returns the new delivery
# count, or 0 when the entry is not free to take.
CLAIM_PENDING = """
local retry_at = redis.call('HGET', KEYS[3], 'retry_at')
local min_idle = ARGV[4]
if retry_at and retry_at ~= '' then
  -- A failed job waiting out its backoff: anyone may take it once the time has come, whether
  -- or not the worker that failed it is alive; not before, even if that worker died.
  if tonumber(retry_at) > tonumber(ARGV[5]) then return 0 end
  min_idle = 0
elseif ARGV[6] == '1' then
  -- Its own worker, holding nothing, asks for work: a delivery whose reply was lost (a
  -- dropped connection, a Redis restart) before the worker could start it.
  min_idle = 0
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  return 0  -- a live worker holds it, however long one chunk takes
end
-- MIN-IDLE makes the claim exclusive: a claim resets the idle time, so a second claimer fails.
if #redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], min_idle, ARGV[3]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'retry_at', '')
return redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1][4]
"""

# KEYS: job, cancel, stream. ARGV: group, entry id, consumer, now, ttl.
# After a delivery: skip (ack) what is finished or cancelled, else fence the job to `consumer`.
SETTLE = (
    _LUA_PRELUDE
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or is_terminal(state) then
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  return {'skip'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[4], ARGV[5])
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  return {'skip'}
end
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'updated_at', ARGV[4])
return {'ok', redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: job, cancel, stream. ARGV: group, entry id, consumer, deliveries, now, ttl.
START = (
    _LUA_PRELUDE
    + """
local status = check(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[3], ARGV[5], ARGV[6], true)
if status == 'gone' then redis.call('XACK', KEYS[3], ARGV[1], ARGV[2]) end
if status then return {status} end
redis.call('HSET', KEYS[1], 'state', 'running', 'attempts', ARGV[4], 'updated_at', ARGV[5],
           'retry_at', '')
return {'ok', redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: job, cancel, stream. ARGV: group, consumer ('' = no fence), now, ttl, hash fields...
PROGRESS = (
    _LUA_PRELUDE
    + """
local status = check(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], true)
if status then return status end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 'lost' end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
return 'ok'
"""
)

# KEYS: job, cancel, stream, dead letters. ARGV: group, consumer, now, ttl, mode
# (succeed | retry | release | dead), retry_at, error, deliveries, dead-letter maxlen,
# output location.
FINISH = (
    _LUA_PRELUDE
    + """
local mode = ARGV[5]
local done = {succeed = 'succeeded', dead = 'failed'}
local state = redis.call('HGET', KEYS[1], 'state')
-- The same call again (redis-py retries after a lost reply) answers as the first one did.
if state and state == done[mode] and redis.call('HGET', KEYS[1], 'worker') == ARGV[2] then
  return {'ok', redis.call('HGETALL', KEYS[1])}
end
-- A cancel request wins over a retry, not over work that is done or given up.
local status = check(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                     mode == 'retry' or mode == 'release')
if status then return {status} end
if mode == 'succeed' then
  redis.call('HSET', KEYS[1], 'output_location', ARGV[10], 'progress', '1.0', 'error', '')
  finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'succeeded', ARGV[3], ARGV[4])
elseif mode == 'retry' or mode == 'release' then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'retry_at', ARGV[6], 'eta_s', '',
             'updated_at', ARGV[3])
  -- A hand-back (a worker shutting down) is no failed try: it is not counted as one.
  if mode == 'release' then redis.call('HINCRBY', KEYS[1], 'releases', 1) end
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[7]) end
else
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*',
             'job', redis.call('HGET', KEYS[1], 'id'), 'error', ARGV[7],
             'deliveries', ARGV[8], 'worker', ARGV[2], 'at', ARGV[3])
  redis.call('HSET', KEYS[1], 'error', ARGV[7])
  finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'failed', ARGV[3], ARGV[4])
end
return {'ok', redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: job, cancel, stream. ARGV: group, now, ttl. Returns the hash, or nil for no such job.
CANCEL = (
    _LUA_PRELUDE
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return nil end
if state == 'queued' then
  local entry = redis.call('HGET', KEYS[1], 'entry_id')
  finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], ARGV[3])
  -- Deleted from the stream it is never delivered; acked (in finish) it is pending nowhere.
  if entry and entry ~= '' then redis.call('XDEL', KEYS[3], entry) end
elseif state == 'running' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
"""
)

# KEYS: stream, heartbeat. ARGV: group, consumer. Forget a dead consumer that holds nothing;
# one script, so a worker cannot come back and read an entry in between (it would be lost).
PRUNE_CONSUMER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
