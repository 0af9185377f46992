-- POST /v1/usersigs/verify over a pool of real tokens (lines "identifier<TAB>usersig", signed
-- beforehand), each thread cycling through the pool from its own offset; every 2xx body must say
-- "valid":true. The requests are formatted once, in init.
-- Usage: wrk ... -s bench/online/verify.lua http://127.0.0.1:PORT -- TOKEN_FILE POOL_FILE
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local pool = {}
local next_index = 1

function init(args)
    assert(#args == 2, "arguments: TOKEN_FILE POOL_FILE")
    local headers = {
        ["Authorization"] = "Bearer " .. first_line(args[1]),
        ["Content-Type"] = "application/json",
    }
    local f = assert(io.open(args[2], "r"))
    for line in f:lines() do
        local id, token = string.match(line, "^([^\t]+)\t([^\t]+)$")
        assert(id ~= nil, "a pool line is not identifier<TAB>usersig")
        local body = '{"usersig":"' .. token .. '","identifier":"' .. id .. '"}'
        pool[#pool + 1] = wrk.format("POST", "/v1/usersigs/verify", headers, body)
        assert(#pool <= 100000, "the pool holds more than 100000 tokens")
    end
    f:close()
    assert(#pool > 0, "the pool is empty")
    next_index = ((tid - 1) * 7919) % #pool + 1
    expect = '"valid":true'
end

function request()
    sent = sent + 1
    local r = pool[next_index]
    next_index = next_index % #pool + 1
    return r
end
