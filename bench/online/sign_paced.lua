-- As sign.lua, one request every PACE ms per connection (wrk's delay()): a steady trickle of
-- single signs whose latency is measured while something else loads the server (bench/batch.sh
-- runs it during concurrent batches and idle, with -t1 -c1).
-- Usage: wrk ... -s bench/online/sign_paced.lua http://127.0.0.1:PORT -- TOKEN_FILE SDKAPPID PREFIX PACE
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "sign.lua")

local sign_init = init
local pace = 20

function init(args)
    assert(#args == 4, "arguments: TOKEN_FILE SDKAPPID PREFIX PACE")
    assert(string.match(args[4], "^[1-9][0-9]*$"), "PACE must be milliseconds")
    pace = tonumber(args[4])
    sign_init({ args[1], args[2], args[3] })
end

function delay()
    return pace
end
