#!lua name=mes_v1
-- monitor-es Functions, library version 1. Function names carry the version so that a
-- later library (mes_v2) can be loaded beside this one during a rolling deploy.
-- Lua has no rollback: every function validates and checks first and writes last.

-- Compare two non-negative decimal strings numerically without converting to doubles.
local function cmp_digits(a, b)
  a = string.gsub(a, '^0+', '')
  b = string.gsub(b, '^0+', '')
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function parse_id(id)
  return string.match(id, '^(%d+)-(%d+)$')
end

-- Stream ids compare as (ms, seq) numbers: as strings, '9-0' would sort after '10-0'.
local function cmp_id(a, b)
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  local c = cmp_digits(ams, bms)
  if c ~= 0 then return c end
  return cmp_digits(aseq, bseq)
end

local function to_int(value, what)
  if value == nil then error('ERR missing ' .. what) end
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) then error('ERR ' .. what .. ' must be an integer') end
  return n
end

local function fence_of(meta_key)
  return tonumber(redis.call('HGET', meta_key, 'fence') or '0')
end

local function check_fence(meta_key, token)
  local fence = fence_of(meta_key)
  if token < fence then
    return redis.error_reply('FENCED stale token ' .. token .. ' < ' .. fence)
  end
  return nil
end

-- Read a section "count, then count * width arguments" starting at args[i].
local function take(args, i, width, what)
  local n = to_int(args[i], what .. ' count')
  if n < 0 or i + n * width > #args then error('ERR malformed commit: ' .. what) end
  local items = {}
  for k = 1, n * width do items[k] = args[i + k] end
  return items, i + 1 + n * width
end

local function parse_commit(args)
  local c = {}
  local i = 4
  c.state_set, i = take(args, i, 2, 'state_set')
  c.state_del, i = take(args, i, 1, 'state_del')
  c.meta_set, i = take(args, i, 2, 'meta_set')
  c.out, i = take(args, i, 1, 'out')
  c.dlq, i = take(args, i, 4, 'dlq')
  c.volume, i = take(args, i, 2, 'volume')
  c.ack, i = take(args, i, 1, 'ack')
  if i ~= #args + 1 then error('ERR malformed commit: trailing arguments') end
  return c
end

local function validate_commit(c)
  for k = 1, #c.meta_set, 2 do
    local f = c.meta_set[k]
    if f == 'last_id' or f == 'fence' or string.sub(f, 1, 5) == 'fail:' then
      error('ERR commit may not set reserved meta field ' .. f)
    end
  end
  for k = 1, #c.dlq, 4 do
    if not parse_id(c.dlq[k]) then error('ERR bad dlq entry id') end
    to_int(c.dlq[k + 2], 'dlq attempts')
  end
  for k = 1, #c.volume, 2 do
    to_int(c.volume[k], 'volume minute')
    to_int(c.volume[k + 1], 'volume count')
  end
  for k = 1, #c.ack do
    if not parse_id(c.ack[k]) then error('ERR bad ack id') end
  end
end

-- unpack() is limited by the Lua C stack, so variadic commands go in bounded chunks.
local function call_chunked(command, key, head, items)
  local chunk = 1000
  for first = 1, #items, chunk do
    local last = math.min(first + chunk - 1, #items)
    if head then
      redis.call(command, key, head, unpack(items, first, last))
    else
      redis.call(command, key, unpack(items, first, last))
    end
  end
end

local function xack_all(log_key, group, ids)
  call_chunked('XACK', log_key, group, ids)
end

-- An acknowledged entry (applied or dead-lettered) needs its failure counter no more.
local function clear_fail_counters(meta_key, ids)
  local fields = {}
  for k = 1, #ids do fields[k] = 'fail:' .. ids[k] end
  call_chunked('HDEL', meta_key, nil, fields)
end

local function write_commit(keys, batch_last_id, c)
  for k = 1, #c.state_set, 2 do redis.call('HSET', keys[2], c.state_set[k], c.state_set[k + 1]) end
  for k = 1, #c.state_del do redis.call('HDEL', keys[2], c.state_del[k]) end
  for k = 1, #c.meta_set, 2 do redis.call('HSET', keys[3], c.meta_set[k], c.meta_set[k + 1]) end
  for k = 1, #c.out do redis.call('XADD', keys[4], '*', 'e', c.out[k]) end
  for k = 1, #c.dlq, 4 do
    local id = c.dlq[k]
    redis.call('XADD', keys[5], '*', 'id', id, 'reason', c.dlq[k + 1],
      'attempts', c.dlq[k + 2], 'e', c.dlq[k + 3])
    redis.call('HDEL', keys[3], 'fail:' .. id)
  end
  clear_fail_counters(keys[3], c.ack)
  for k = 1, #c.volume, 2 do redis.call('HINCRBY', keys[6], c.volume[k], c.volume[k + 1]) end
  redis.call('HSET', keys[3], 'last_id', batch_last_id)
end

-- An entry at or below the batch's last id that is still pending and not acknowledged by
-- this batch was read but never applied (a read whose reply was lost, re-sent by a retrying
-- client): moving the high-water mark past it would lose it for good. Returns its id.
local function unapplied_below(log_key, group, batch_last_id, acks)
  local acked = {}
  for k = 1, #acks do acked[acks[k]] = true end
  local pending = redis.call('XPENDING', log_key, group, '-', batch_last_id, #acks + 1)
  for k = 1, #pending do
    if not acked[pending[k][1]] then return pending[k][1] end
  end
  return nil
end

-- KEYS: log, state, meta, out, dlq, volume.
-- ARGV: group, token, batch_last_id, then for each section its count and items:
--   state_set (field, blob), state_del (field), meta_set (field, value), out (blob),
--   dlq (entry id, reason, attempts, payload), volume (minute, count), ack (entry id).
-- Returns 1 when applied, 0 for a batch at or below last_id (only acknowledged again);
-- refuses (GAP) a batch that would pass an entry read but neither in it nor acknowledged.
-- Applying also drops the fail:<id> counters of the dead-lettered and acknowledged ids.
local function commit(keys, args)
  local group, batch_last_id = args[1], args[3]
  local token = to_int(args[2], 'token')
  if not parse_id(batch_last_id) then error('ERR bad batch_last_id') end
  local c = parse_commit(args)
  validate_commit(c)
  local fenced = check_fence(keys[3], token)
  if fenced then return fenced end
  local prev = redis.call('HGET', keys[3], 'last_id')
  if prev and cmp_id(batch_last_id, prev) <= 0 then
    -- A redelivered batch: its effects are already stored, so only acknowledge it.
    xack_all(keys[1], group, c.ack)
    return 0
  end
  local gap = unapplied_below(keys[1], group, batch_last_id, c.ack)
  if gap then
    return redis.error_reply('GAP entry ' .. gap .. ' is pending below ' .. batch_last_id)
  end
  write_commit(keys, batch_last_id, c)
  xack_all(keys[1], group, c.ack)
  return 1
end

-- KEYS: meta. ARGV: token, entry id. Returns the entry's failure count.
local function fail(keys, args)
  local token = to_int(args[1], 'token')
  if not parse_id(args[2]) then error('ERR bad entry id') end
  local fenced = check_fence(keys[1], token)
  if fenced then return fenced end
  return redis.call('HINCRBY', keys[1], 'fail:' .. args[2], 1)
end

-- A lease value is "<owner> <token>"; owners contain no whitespace.
local function lease_holder(lease_key)
  local value = redis.call('GET', lease_key)
  if not value then return nil, nil end
  local owner, token = string.match(value, '^(%S+) (%d+)$')
  return owner, token
end

-- KEYS: lease, meta. ARGV: owner, ttl_ms. Returns the token, or 0 if someone else holds it.
local function lease_acquire(keys, args)
  local owner = args[1]
  local ttl = to_int(args[2], 'ttl_ms')
  if ttl <= 0 or not string.match(owner, '^%S+$') then error('ERR bad lease arguments') end
  local holder, token = lease_holder(keys[1])
  if holder == owner then
    redis.call('PEXPIRE', keys[1], ttl)
    return tonumber(token)
  end
  if holder ~= nil or redis.call('EXISTS', keys[1]) == 1 then return 0 end
  -- Stamping the new token into meta fences a paused previous owner at once.
  local new_token = redis.call('HINCRBY', keys[2], 'fence', 1)
  redis.call('SET', keys[1], owner .. ' ' .. new_token, 'PX', ttl)
  return new_token
end

-- KEYS: lease. ARGV: owner, token, ttl_ms. Returns 1 if renewed, 0 if the lease was lost.
local function lease_renew(keys, args)
  local ttl = to_int(args[3], 'ttl_ms')
  if ttl <= 0 then error('ERR bad ttl_ms') end
  local holder, token = lease_holder(keys[1])
  if holder ~= args[1] or token ~= args[2] then return 0 end
  redis.call('PEXPIRE', keys[1], ttl)
  return 1
end

-- KEYS: lease. ARGV: owner, token. Returns 1 if released, 0 if it was not held.
local function lease_release(keys, args)
  local holder, token = lease_holder(keys[1])
  if holder ~= args[1] or token ~= args[2] then return 0 end
  redis.call('DEL', keys[1])
  return 1
end

-- The worker registry, timed by the server's clock (hosts' clocks may disagree).
-- KEYS: the registry sorted set. ARGV: owner, ttl_ms. Records the owner as alive now,
-- forgets owners silent for more than a ttl and returns the live ones, sorted.
local function heartbeat(keys, args)
  local ttl = to_int(args[2], 'ttl_ms')
  if ttl <= 0 or not string.match(args[1], '^%S+$') then error('ERR bad heartbeat arguments') end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZADD', keys[1], now, args[1])
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', '(' .. (now - ttl))
  return redis.call('ZRANGE', keys[1], 0, -1)
end

-- A write of the system-incident aggregator, fenced by the pulser token it runs under.
-- KEYS: the hash holding the fence (a partition's meta, or the target itself), the target
-- (same slot). ARGV: token, op ('xadd' | 'hset' | 'hsetnx' | 'hdel'), then the op's field
-- arguments.
-- A token below the highest one this fence has seen is refused: a paused former
-- aggregator cannot interleave its writes with its successor's once the successor wrote.
local function aggregator_write(keys, args)
  local token = to_int(args[1], 'token')
  local op = args[2]
  if #args < 3 then error('ERR malformed aggregator write') end
  local seen = tonumber(redis.call('HGET', keys[1], 'aggregator_fence') or '0')
  if token < seen then
    return redis.error_reply('FENCED stale aggregator token ' .. token .. ' < ' .. seen)
  end
  local fields = {}
  for i = 3, #args do fields[#fields + 1] = args[i] end
  local result
  if op == 'xadd' then
    if #fields % 2 ~= 0 then error('ERR xadd needs field/value pairs') end
    result = redis.call('XADD', keys[2], 'NOMKSTREAM', '*', unpack(fields))
    if not result then return false end -- no stream: nothing written, not even the fence
  elseif op == 'hset' then
    if #fields % 2 ~= 0 then error('ERR hset needs field/value pairs') end
    result = redis.call('HSET', keys[2], unpack(fields))
  elseif op == 'hsetnx' then
    if #fields ~= 2 then error('ERR hsetnx needs one field and value') end
    result = redis.call('HSETNX', keys[2], fields[1], fields[2])
  elseif op == 'hdel' then
    result = redis.call('HDEL', keys[2], unpack(fields))
  else
    error('ERR unknown aggregator op ' .. tostring(op))
  end
  if token > seen then redis.call('HSET', keys[1], 'aggregator_fence', token) end
  return result
end

redis.register_function('mes_commit_v1', commit)
redis.register_function('mes_fail_v1', fail)
redis.register_function('mes_lease_acquire_v1', lease_acquire)
redis.register_function('mes_lease_renew_v1', lease_renew)
redis.register_function('mes_lease_release_v1', lease_release)
-- v2 added the 'hsetnx' op; v1 stays for processes of the previous version during an upgrade.
redis.register_function('mes_aggregator_write_v1', aggregator_write)
redis.register_function('mes_aggregator_write_v2', aggregator_write)
redis.register_function('mes_heartbeat_v1', heartbeat)
