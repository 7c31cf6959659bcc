"""Lua run by Redis: one heartbeat that also keeps the membership clean and holds or takes the lease.

Run as one script, so it sees one instant (Redis server time, the same for every instance whatever
their clocks) and nothing interleaves between reading and writing the lease.
"""

from __future__ import annotations

HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(expired) do
  redis.call('HDEL', KEYS[2], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local present = redis.call('ZSCORE', KEYS[1], me) and 1 or 0
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), me)
redis.call('HSET', KEYS[2], me, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PEXPIRE', KEYS[2], 86400000)
local holder = redis.call('GET', KEYS[3])
local epoch = 0
if holder then
  local who, number = string.match(holder, '^(.*)|(%d+)$')
  if who == me then
    redis.call('PEXPIRE', KEYS[3], ARGV[4])
    epoch = tonumber(number)
  end
elseif ARGV[5] == '1' then
  local floor = tonumber(ARGV[6]) or 0
  local current = tonumber(redis.call('GET', KEYS[4]))
  if current == nil or current < floor or current >= 9007199254740992 then
    redis.call('SET', KEYS[4], floor)  -- lost its data (epochs never go back), or garbage (past 2^53)
  end
  epoch = redis.call('INCR', KEYS[4])
  holder = me .. '|' .. epoch
  redis.call('SET', KEYS[3], holder, 'PX', ARGV[4])
end
return {epoch, holder or '', now, redis.call('HGETALL', KEYS[2]), present}
"""
"""KEYS: members, planes, leader, epoch. ARGV: instance, member ttl ms, planes, lease ttl ms, 1 to run for leader,
the highest epoch this instance has seen (a new lease's epoch is above it, even after Redis lost its data).
Returns {epoch held (0: not the leader), the lease's holder ("" if none), server ms, planes as a flat list,
1 if this instance was a live member before this beat else 0 (its entry expired: the others may have dropped it)}."""

LEAVE = """
local holder = redis.call('GET', KEYS[3])
if holder and string.match(holder, '^(.*)|%d+$') == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""
"""KEYS: members, planes, leader. ARGV: instance. Gives the lease up (if held) and leaves the membership."""
