"""The signaling directory's Lua scripts (``redis_directory``): one per operation, each
atomic across processes. ``now`` and deadlines are arguments, never Redis's clock.

Registry entries are "proc conn rank proven token"; a process proves it is alive with
``alive:<proc>`` and lists the ids it registered in ``ids:<proc>``; ``grp:ip:<address>``
and ``grp:net:<network>`` hold the "id proc conn" of ids claimed from a client address or
network (per-address quotas, pruned lazily by the claims).
"""

CLAIM = """
local prefix, id, proc = ARGV[1], ARGV[2], ARGV[3]
local entry = redis.call('HGET', KEYS[1], id)
local prev_proc, prev_conn, eproc = '', '', nil
if entry then
  local econn, erank, eproven, etoken
  eproc, econn, erank, eproven, etoken =
    string.match(entry, '^(%S+) (%S+) (%S+) (%S+) (.*)$')
  if redis.call('EXISTS', prefix .. 'alive:' .. eproc) == 1 then
    local proven = ARGV[6] == '1'
    if not (etoken == ARGV[5] or
            (proven and (eproven ~= '1' or tonumber(ARGV[7]) >= tonumber(erank)))) then
      return {'taken', '', ''}
    end
    prev_proc, prev_conn = eproc, econn
  end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[8]) then
  return {'full', '', ''}
end
-- Quotas (ARGV[9..]: group, limit, refusal): members are "id proc conn", counted while
-- that connection still holds the id on a live process; stale members are dropped here.
for g = 9, #ARGV, 3 do
  local key, n = prefix .. 'grp:' .. ARGV[g], 0
  for _, member in ipairs(redis.call('SMEMBERS', key)) do
    local mid, mholder = string.match(member, '^(%S+) (.*)$')
    if mid ~= id then
      local held = redis.call('HGET', KEYS[1], mid)
      if held and string.sub(held, 1, #mholder + 1) == mholder .. ' ' and
         redis.call('EXISTS', prefix .. 'alive:' .. string.match(mholder, '^(%S+)')) == 1 then
        n = n + 1
      else
        redis.call('SREM', key, member)
      end
    end
  end
  if n >= tonumber(ARGV[g + 1]) then
    return {ARGV[g + 2], '', ''}
  end
end
if prev_proc ~= '' and prev_proc ~= proc then
  redis.call('PUBLISH', prefix .. 'to:' .. prev_proc, '!kick ' .. prev_conn)
end
if entry then
  redis.call('SREM', prefix .. 'ids:' .. eproc, id)
end
redis.call('HSET', KEYS[1], id,
  proc .. ' ' .. ARGV[4] .. ' ' .. ARGV[7] .. ' ' .. ARGV[6] .. ' ' .. ARGV[5])
redis.call('SADD', prefix .. 'ids:' .. proc, id)
for g = 9, #ARGV, 3 do
  local key = prefix .. 'grp:' .. ARGV[g]
  redis.call('SADD', key, id .. ' ' .. proc .. ' ' .. ARGV[4])
  redis.call('PEXPIRE', key, 604800000)
end
local queued = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], id)
local out = {'open', prev_proc, prev_conn}
if prev_proc ~= '' then out[1] = 'replaced' end
for i = 1, #queued do out[#out + 1] = queued[i] end
return out
"""

RELEASE = """
local entry = redis.call('HGET', KEYS[1], ARGV[2])
local holder = ARGV[3] .. ' ' .. ARGV[4] .. ' '
if entry and string.sub(entry, 1, #holder) == holder then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('SREM', ARGV[1] .. 'ids:' .. ARGV[3], ARGV[2])
  return 1
end
return 0
"""

# Many frames in one call: each holder's process gets one PUBLISH for all its frames
# ("dst\nsrc\nframe" lines; JSON frames never contain a raw newline, ids cannot).
ROUTE = """
local prefix, limit, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local status, holders, batches, procs, alive = {}, {}, {}, {}, {}
local n = 0
for i = 4, #ARGV, 5 do
  n = n + 1
  local dst = ARGV[i]
  local entry = redis.call('HGET', KEYS[1], dst)
  if entry then
    local eproc = string.match(entry, '^(%S+) ')
    if alive[eproc] == nil then
      alive[eproc] = redis.call('EXISTS', prefix .. 'alive:' .. eproc) == 1
    end
    if alive[eproc] then
      local batch = batches[eproc]
      if batch == nil then
        batch = {}
        batches[eproc] = batch
        procs[#procs + 1] = eproc
      end
      batch[#batch + 1] = dst .. '\\n' .. ARGV[i + 1] .. '\\n' .. ARGV[i + 2]
      status[n] = 'sent'
      holders[n] = eproc
    else
      redis.call('HDEL', KEYS[1], dst)
      redis.call('SREM', prefix .. 'ids:' .. eproc, dst)
      status[n] = 'dead'
    end
  elseif ARGV[i + 3] ~= '1' then
    status[n] = 'dropped'
  else
    local queue = prefix .. 'q:' .. dst
    local length = redis.call('LLEN', queue)
    if length >= limit then
      status[n] = 'queue_full'
    else
      redis.call('RPUSH', queue, ARGV[i + 2])
      if length == 0 then
        redis.call('ZADD', KEYS[2], ARGV[i + 4], dst)
        -- a safety net: the queue is gone even if no process is left to expire it
        redis.call('PEXPIRE', queue, ttl)
      end
      status[n] = 'queued'
    end
  end
end
local unreachable = {}
for _, proc in ipairs(procs) do
  if redis.call('PUBLISH', prefix .. 'to:' .. proc, table.concat(batches[proc], '\\n')) == 0 then
    unreachable[proc] = true
  end
end
if next(unreachable) then
  for k = 1, n do
    local proc = holders[k]
    if proc and unreachable[proc] then
      status[k] = 'dead'
      local dst = ARGV[4 + (k - 1) * 5]
      local entry = redis.call('HGET', KEYS[1], dst)
      if entry and string.sub(entry, 1, #proc + 1) == proc .. ' ' then
        redis.call('HDEL', KEYS[1], dst)
        redis.call('SREM', prefix .. 'ids:' .. proc, dst)
      end
    end
  end
end
return status
"""

EXPIRE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local key = ARGV[1] .. 'q:' .. id
  local frames = redis.call('LRANGE', key, 0, -1)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
  for i = 1, #frames do out[#out + 1] = frames[i] end
end
return out
"""

SWEEP = """
local removed = 0
for _, proc in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. 'alive:' .. proc) == 0 then
    local set = ARGV[1] .. 'ids:' .. proc
    for _, id in ipairs(redis.call('SMEMBERS', set)) do
      local entry = redis.call('HGET', KEYS[1], id)
      if entry and string.sub(entry, 1, #proc + 1) == proc .. ' ' then
        redis.call('HDEL', KEYS[1], id)
        removed = removed + 1
      end
    end
    redis.call('DEL', set)
    redis.call('SREM', KEYS[2], proc)
  end
end
return removed
"""

# The registry's holder of every id in this process's set, and of the ids given:
# "id", "entry or ''" pairs (for the reconciler, ``upkeep.Reconciler``).
OWNED = """
local prefix, proc = ARGV[1], ARGV[2]
local seen, out = {}, {}
local function add(id)
  if not seen[id] then
    seen[id] = true
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[1], id) or ''
  end
end
for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'ids:' .. proc)) do add(id) end
for i = 3, #ARGV do add(ARGV[i]) end
return out
"""

# Releases of (id, conn) pairs, each only while that connection of this process still
# holds the id; an id in this process's set whose entry is no longer ours just leaves it.
RELEASE_MANY = """
local prefix, proc = ARGV[1], ARGV[2]
local released = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local entry = redis.call('HGET', KEYS[1], id)
  local holder = proc .. ' ' .. ARGV[i + 1] .. ' '
  if entry and string.sub(entry, 1, #holder) == holder then
    redis.call('HDEL', KEYS[1], id)
    redis.call('SREM', prefix .. 'ids:' .. proc, id)
    released = released + 1
  elseif not entry or string.sub(entry, 1, #proc + 1) ~= proc .. ' ' then
    redis.call('SREM', prefix .. 'ids:' .. proc, id)
  end
end
return released
"""

# Entries among the given ids whose holder's alive key is gone (a swept registry chunk).
DROP_DEAD = """
local prefix, removed, alive = ARGV[1], 0, {}
for i = 2, #ARGV do
  local entry = redis.call('HGET', KEYS[1], ARGV[i])
  if entry then
    local proc = string.match(entry, '^(%S+) ')
    if alive[proc] == nil then
      alive[proc] = redis.call('EXISTS', prefix .. 'alive:' .. proc) == 1
    end
    if not alive[proc] then
      redis.call('HDEL', KEYS[1], ARGV[i])
      redis.call('SREM', prefix .. 'ids:' .. proc, ARGV[i])
      removed = removed + 1
    end
  end
end
return removed
"""
